"""What a body is, for comparing: JSON, form fields, text lines, or bytes (size and
SHA-256). Decided by content type, then by content; a body kept only in part is
compared by the whole body's size and hash. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from tapproxy.capture.encoding import decoded_body, parse_json
from tapproxy.capture.model import Request, Response
from tapproxy.errors import CaptureError

__all__ = ["BodyView", "body_view", "boundary_masked", "form_fields"]

_TEXT_TYPES = ("text/", "application/xml", "application/javascript", "application/x-ndjson",
               "application/yaml", "application/graphql")


@dataclass(frozen=True, slots=True)
class BodyView:
    kind: str  # "empty" | "json" | "form" | "text" | "binary"
    value: object  # the JSON value, the fields, the text; (size, sha256 hex) for binary

    def describe(self) -> str:
        """A few words for a body compared as a whole (its kind changed, or bytes)."""
        if self.kind == "binary":
            size, digest = self.value  # type: ignore[misc]
            return f"{size:,} bytes sha256:{digest[:12]}"
        if self.kind == "empty":
            return "(empty)"
        return self.kind


def form_fields(text: str) -> dict[str, object]:
    """Form (or query) fields by name: one value as a string, repeated ones as a list."""
    out: dict[str, object] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        if name in out:
            prev = out[name]
            out[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[name] = value
    return out


def _binary(data: bytes, size: int | None = None, digest: bytes | None = None) -> BodyView:
    return BodyView("binary", (len(data) if size is None else size,
                               (digest or hashlib.sha256(data).digest()).hex()))


def body_view(msg: Request | Response) -> BodyView:
    """The view of `msg`'s body, its content-encoding undone."""
    if msg.body_truncated:  # only its first bytes are here: the whole body's size and hash
        return _binary(msg.body, msg.body_size, msg.body_sha256)
    try:
        data = decoded_body(msg)
    except CaptureError:
        return _binary(msg.body)  # an encoding that cannot be undone: the bytes as sent
    if not data:
        return BodyView("empty", None)
    ctype = msg.content_type
    if ctype.startswith("multipart/"):
        data = _without_boundary(data, msg.headers.get("content-type") or "")
    if ctype == "application/json" or ctype.endswith("+json") or (
            not ctype and data[:1] in (b"{", b"[")):
        try:
            return BodyView("json", parse_json(data))
        except ValueError:
            pass  # declared JSON but is not: compared as text below
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _binary(data)
    if ctype == "application/x-www-form-urlencoded":
        return BodyView("form", form_fields(text))
    if ctype.startswith(_TEXT_TYPES) or ctype == "application/json" or _looks_textual(text):
        return BodyView("text", text)
    return _binary(data)


_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;,\s]+))', re.IGNORECASE)


def boundary_masked(content_type: str) -> str:
    """A multipart content-type with its boundary (random in most clients) masked."""
    return _BOUNDARY.sub("boundary=<boundary>", content_type)


def _without_boundary(data: bytes, content_type: str) -> bytes:
    """A multipart body with its random boundary as `<boundary>`: the parts compare."""
    m = _BOUNDARY.search(content_type)
    if m is None:
        return data
    return data.replace((m.group(1) or m.group(2)).encode("latin-1"), b"<boundary>")


def _looks_textual(text: str) -> bool:
    return all(c.isprintable() or c in "\r\n\t" for c in text[:4096])
