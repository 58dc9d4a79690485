"""Masking credentials in records before they are written.

Runs on the writer thread (never on the proxy's event loop). A masked header keeps
its name; its value becomes MASK. JSON bodies are masked by path and re-encoded
with their original Content-Encoding, so the stored body stays a valid body.
"""

from __future__ import annotations

import dataclasses
import json
import re

from tapproxy.capture.encoding import decode_body, encode_body
from tapproxy.capture.model import Exchange, Headers, Record
from tapproxy.errors import CaptureError, UsageError

__all__ = ["DEFAULT_HEADERS", "MASK", "Redactor", "parse_json_path"]

MASK = "<redacted>"
_MASK_BYTES = MASK.encode()
DEFAULT_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
     "apikey", "x-auth-token", "x-access-token", "x-csrf-token", "x-xsrf-token",
     "x-amz-security-token"}
)
# Names that carry a credential by the look of them (x-goog-api-key, x-session-token, …).
_CREDENTIAL_LIKE = re.compile(
    r"(^|[-_])(api[-_]?key|access[-_]?key|secret|token|password|passwd|session[-_]?id)($|[-_])",
    re.IGNORECASE,
)
# `..name` is any-depth descent then a name; `..[…]` descent then a bracket segment.
_SEGMENT = re.compile(
    r"\.\.?([A-Za-z_$][\w$-]*|\*)|\.\.(?=\[)|\[(\*|\d+|'[^']*'|\"[^\"]*\")\]"
)


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """`$.a.b`, `$.items[*].card`, `$..token`, `$['odd key']` → segments ('..' = any depth)."""
    p = path.strip()
    if not p.startswith("$"):
        p = "$." + p
    segments: list[str | int] = []
    pos = 1
    while pos < len(p):
        m = _SEGMENT.match(p, pos)
        if m is None:
            raise UsageError(f"bad --redact-json path {path!r} at {p[pos:]!r}: "
                             "expected .name, [*], [N], ['name'] or ..name")
        token = m.group(0)
        if token.startswith(".."):
            segments.append("..")
            if m.group(1) is not None:
                segments.append(m.group(1))
        elif m.group(1) is not None:
            segments.append(m.group(1))
        else:
            inner = m.group(2)
            segments.append("*" if inner == "*" else int(inner) if inner.isdigit() else inner[1:-1])
        pos = m.end()
    if not segments or segments[-1] == "..":
        raise UsageError(f"bad --redact-json path {path!r}: it names no field")
    return tuple(segments)


def _mask_path(node: object, path: tuple[str | int, ...]) -> bool:
    """Mask in place what `path` names under `node`; True if anything was masked."""
    if not path:
        return False
    head, rest = path[0], path[1:]
    if head == "..":
        hit = _mask_path(node, rest)
        if isinstance(node, dict):
            children = list(node.values())
        else:
            children = node if isinstance(node, list) else []
        for child in children:
            hit |= _mask_path(child, path)
        return hit
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
    elif isinstance(node, list):
        if head == "*":
            keys = range(len(node))
        elif isinstance(head, int) and head < len(node):
            keys = [head]
        else:
            keys = []
    else:
        return False
    hit = False
    for k in keys:
        if rest:
            hit |= _mask_path(node[k], rest)
        else:
            node[k] = MASK
            hit = True
    return hit


class Redactor:
    """A record transform masking credential headers and JSON fields."""

    def __init__(self, extra_headers: tuple[str, ...] = (), json_paths: tuple[str, ...] = ()):
        self._headers = DEFAULT_HEADERS | {h.lower() for h in extra_headers}
        self._paths = [(p, parse_json_path(p)) for p in json_paths]
        self._verdicts: dict[bytes, bool] = {}  # header names repeat: decide each once

    def _is_secret(self, name: bytes) -> bool:
        verdict = self._verdicts.get(name)
        if verdict is None:
            lname = name.decode("utf-8", "replace").lower()
            verdict = lname in self._headers or bool(_CREDENTIAL_LIKE.search(lname))
            if len(self._verdicts) < 10_000:  # bounded, whatever names clients invent
                self._verdicts[name] = verdict
        return verdict

    def _headers_of(self, h: Headers, side: str, log: list[str]) -> Headers:
        raw = h.raw
        if not any(self._is_secret(k) for k, _ in raw):
            return h
        out = []
        for k, v in raw:
            if self._is_secret(k):
                entry = f"{side}.header:{k.decode('utf-8', 'replace').lower()}"
                if entry not in log:
                    log.append(entry)
                v = _MASK_BYTES
            out.append((k, v))
        return Headers.from_raw(tuple(out))

    def _message(self, msg, side: str, log: list[str]):
        """`msg` with credential headers and JSON paths masked (itself if nothing was)."""
        headers = self._headers_of(msg.headers, side, log)
        body = self._body_of(msg, side, log)
        if body is not msg.body and headers.get("content-length") is not None:
            # The masked body has another length; the record must describe its own body.
            headers = Headers(tuple((k, str(len(body)) if k.lower() == "content-length" else v)
                                    for k, v in headers.fields))
        if headers is msg.headers and body is msg.body:
            return msg
        return dataclasses.replace(msg, headers=headers, body=body)

    def _body_of(self, msg, side: str, log: list[str]) -> bytes:
        if not self._paths or not msg.body or "json" not in msg.content_type:
            return msg.body
        encoding = msg.headers.get("content-encoding")
        try:
            doc = json.loads(decode_body(msg.body, encoding))
        except (ValueError, CaptureError):
            return msg.body  # not JSON after all: nothing to mask by path
        hits = [p for p, segs in self._paths if _mask_path(doc, segs)]
        if not hits:
            return msg.body
        log.extend(f"{side}.json:{p}" for p in hits)
        return encode_body(json.dumps(doc, separators=(",", ":")).encode(), encoding)

    def __call__(self, record: Record) -> Record:
        if not isinstance(record, Exchange):
            return record
        log: list[str] = []
        q = self._message(record.request, "request", log)
        r = record.response
        if r is not None:
            r = self._message(r, "response", log)
        if not log:
            return record
        return dataclasses.replace(record, request=q, response=r,
                                   redacted=(*record.redacted, *log))
