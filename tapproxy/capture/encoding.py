"""Content-Encoding: bodies are stored as sent; these give the decoded view and back.

Kept here (not mitmproxy.net.encoding) so analyses never import mitmproxy.
"""

from __future__ import annotations

import gzip
import zlib

import brotli

try:  # Python 3.14 ships zstd; mitmproxy brings the backport before that
    from compression import zstd
except ImportError:
    from backports import zstd

from tapproxy.errors import CaptureError

__all__ = ["decode_body", "encode_body"]


def _inflate(data: bytes) -> bytes:
    # RFC 9110 "deflate" is zlib-wrapped, but some servers send raw deflate.
    try:
        return zlib.decompress(data)
    except zlib.error:
        return zlib.decompress(data, -zlib.MAX_WBITS)


def _unzstd(data: bytes) -> bytes:
    return zstd.decompress(data)


_DECODERS = {
    "gzip": gzip.decompress,
    "x-gzip": gzip.decompress,
    "deflate": _inflate,
    "br": brotli.decompress,
    "zstd": _unzstd,
    "identity": lambda b: b,
}

_ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstd.compress,
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
