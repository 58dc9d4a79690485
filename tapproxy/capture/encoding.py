"""Content-Encoding: bodies are stored as sent; these give the decoded views and back.

Kept here (not mitmproxy.net.encoding) so analyses never import mitmproxy.
"""

from __future__ import annotations

import gzip
import json
import zlib

import msgspec

from tapproxy.capture.model import Request, Response
from tapproxy.errors import CaptureError

__all__ = ["body_json", "body_text", "decode_body", "decoded_body", "encode_body", "parse_json"]


def _inflate(data: bytes) -> bytes:
    # RFC 9110 "deflate" is zlib-wrapped, but some servers send raw deflate.
    try:
        return zlib.decompress(data)
    except zlib.error:
        return zlib.decompress(data, -zlib.MAX_WBITS)


# brotli and zstd are imported by the first body that needs them: most captures have
# none, and every command reading bodies would pay for both at start.
def _brotli():
    import brotli

    return brotli


def _zstd():
    try:  # Python 3.14 ships zstd; mitmproxy brings the backport before that
        from compression import zstd
    except ImportError:
        from backports import zstd
    return zstd


_DECODERS = {
    "gzip": gzip.decompress,
    "x-gzip": gzip.decompress,
    "deflate": _inflate,
    "br": lambda b: _brotli().decompress(b),
    "zstd": lambda b: _zstd().decompress(b),
    "identity": lambda b: b,
}

_ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": lambda b: _brotli().compress(b),
    "zstd": lambda b: _zstd().compress(b),
    "identity": lambda b: b,
}


def _codings(content_encoding: str | None) -> list[str]:
    if not content_encoding:
        return []
    return [c.strip().lower() for c in content_encoding.split(",") if c.strip()]


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """Undo `content_encoding` (codings applied in order, so undone in reverse)."""
    for coding in reversed(_codings(content_encoding)):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            raise CaptureError(f"unsupported content-encoding {coding!r}")
        try:
            body = decoder(body)
        except Exception as e:  # each library raises its own error type
            raise CaptureError(f"body is not valid {coding}: {e}") from e
    return body


def encode_body(body: bytes, content_encoding: str | None) -> bytes:
    """Apply `content_encoding` to a decoded body (used to re-encode after redaction)."""
    for coding in _codings(content_encoding):
        encoder = _ENCODERS.get(coding)
        if encoder is None:
            raise CaptureError(f"unsupported content-encoding {coding!r}")
        body = encoder(body)
    return body


def decoded_body(msg: Request | Response) -> bytes:
    """A message's body with its Content-Encoding undone (CaptureError if corrupt).

    Of a truncated body, the kept bytes when it has no encoding; an encoded one
    cannot be undone from its first bytes alone (CaptureError)."""
    coding = msg.headers.get("content-encoding")
    if msg.body_size is not None and (coding or "identity").strip().lower() != "identity":
        raise CaptureError(f"only the first {len(msg.body)} of {msg.body_size} bytes "
                           f"were kept: {coding} cannot be undone")
    return decode_body(msg.body, coding)


def body_text(msg: Request | Response) -> str:
    """The decoded body as text, undecodable bytes replaced."""
    return decoded_body(msg).decode("utf-8", "replace")


def body_json(msg: Request | Response) -> object:
    """The decoded body parsed as JSON (ValueError if it is not JSON)."""
    return json.loads(decoded_body(msg))


_json = msgspec.json.Decoder()
_MSGSPEC_REFUSES = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
_PARSED: dict[bytes, object] = {}
_KEEP_PARSED = 32  # the last bodies parsed, by their bytes
_KEEP_BYTES = 16 << 10  # ... when no larger than this


def parse_json(data: bytes) -> object:
    """`json.loads(data)` (ValueError if it is not JSON), several times faster.

    msgspec parses where it can: it gives the very values json.loads gives, or refuses
    (NaN, a number past a float's range, a lone surrogate, a BOM, UTF-16), and then
    json.loads decides. The values of the last few bodies parsed are kept, so a body
    parsed twice (learned from, then compared) is parsed once: they are shared, and
    no caller may change them.
    """
    if len(data) <= _KEEP_BYTES:
        found = _PARSED.get(data, _PARSED)
        if found is not _PARSED:
            return found
    try:
        value = _json.decode(data)
    except _MSGSPEC_REFUSES:
        value = json.loads(data)
    if len(data) <= _KEEP_BYTES:
        if len(_PARSED) >= _KEEP_PARSED:
            # The oldest (another thread may have taken it first: pop, not del; or
            # changed the dict under next). No contextlib.suppress: entering its context
            # manager cost more than the parse.
            try:  # noqa: SIM105
                _PARSED.pop(next(iter(_PARSED), None), None)  # type: ignore[arg-type]
            except RuntimeError:
                pass
        _PARSED[data] = value
    return value
