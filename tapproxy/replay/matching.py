"""What makes an incoming request the same as a recorded one: a key per request.

A key holds the criteria `--match` chose (method, path, query, body), each in a form
where noise does not count: query values and JSON bodies go through the noise model's
mask (a fresh UUID or timestamp in a request still matches), query parameters and JSON
object members in any order. Pure: no I/O, no sockets; the index keys recorded requests
and the server keys incoming ones with the same functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from tapproxy.capture.encoding import decode_body
from tapproxy.errors import CaptureError, UsageError

__all__ = ["CRITERIA", "Mask", "RequestView", "body_key", "parse_criteria", "parse_json_body",
           "query_key",
           "request_key"]

#: What `--match` can choose, in the order a key holds them.
CRITERIA = ("method", "path", "query", "body")

type Mask = Callable[[object], object]
"""A JSON value with its noisy leaves replaced (the noise model's `mask`)."""


def parse_criteria(specs: Iterable[str] | None) -> tuple[str, ...]:
    """`--match method,path` (repeatable, comma-separated) → criteria in key order;
    every criterion when none is given (UsageError naming an unknown one)."""
    chosen: set[str] = set()
    for spec in specs or ():
        for name in (s.strip().lower() for s in spec.split(",")):
            if name not in CRITERIA:
                raise UsageError(f"bad --match {spec!r}: {name!r} is not one of "
                                 f"{', '.join(CRITERIA)}")
            chosen.add(name)
    return tuple(c for c in CRITERIA if c in chosen) if chosen else CRITERIA


@dataclass(frozen=True, slots=True)
class RequestView:
    """The parts of a request that matching reads, recorded or incoming alike."""

    method: str
    path: str  # without the query
    query: str
    content_type: str
    content_encoding: str | None
    body: bytes  # as sent (content-encoding kept)
    whole_sha256: bytes | None = None  # a recorded body kept in part: the whole one's hash


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8", "surrogatepass")


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def parse_json_body(view: RequestView) -> object:
    """The body as JSON (ValueError if it is none): by content type, or a body that
    opens like JSON (clients send JSON as text/plain too)."""
    if view.whole_sha256 is not None or not view.body:
        raise ValueError("no whole body")
    try:
        body = decode_body(view.body, view.content_encoding)
    except CaptureError as e:
        raise ValueError(str(e)) from None
    if not _is_json_type(view.content_type) and body.lstrip()[:1] not in (b"{", b"["):
        raise ValueError("not JSON")
    return json.loads(body)


def body_key(view: RequestView, mask: Mask) -> tuple:
    """The body as matching compares it: JSON structurally with noise masked, a form by
    its fields, anything else by the SHA-256 of its bytes as sent (which a body kept in
    part still has, so a large upload matches the recorded one)."""
    if view.whole_sha256 is not None:
        return ("bytes", view.whole_sha256)
    if not view.body:
        return ("empty",)
    try:
        return ("json", _digest(_canonical(mask(parse_json_body(view)))))
    except (ValueError, RecursionError):
        pass
    if view.content_type == "application/x-www-form-urlencoded" \
            and view.content_encoding is None:
        return ("form", query_key(view.body.decode("latin-1"), mask))
    return ("bytes", hashlib.sha256(view.body).digest())


def query_key(query: str, mask: Mask) -> bytes:
    """Query parameters by name (any order between names, in order within one), their
    values masked (`?t=1733600000` matches another time)."""
    if not query:
        return b""
    fields: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        fields.setdefault(k, []).append(v)
    return _digest(_canonical(mask(fields)))


def request_key(view: RequestView, criteria: tuple[str, ...], mask: Mask) -> tuple:
    """The chosen criteria's values, comparable with `==` and hashable."""
    parts: list[object] = []
    for c in criteria:
        if c == "method":
            parts.append(view.method.upper())
        elif c == "path":
            parts.append(view.path)
        elif c == "query":
            parts.append(query_key(view.query, mask))
        else:
            parts.append(body_key(view, mask))
    return tuple(parts)
