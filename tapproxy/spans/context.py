"""W3C trace context (https://www.w3.org/TR/trace-context/) and deterministic ids.

Synthesized ids are derived from exchange ids, so the spans of one capture are the same
whether made live while recording or later by `tapproxy spans`, and an injected
`traceparent` names the very client span that synthesis will produce.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from hashlib import blake2b

__all__ = ["TraceParent", "format_traceparent", "parse_traceparent", "span_id_for",
           "span_ids_for", "trace_id_for"]

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: int
    parent_id: int
    sampled: bool


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The context in a `traceparent` header, or None if absent or invalid per W3C."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip())  # W3C: uppercase hex is invalid, not folded
    if m is None:
        return None
    version, trace, parent, flags, rest = m.groups()
    # Version ff is invalid; version 00 has exactly four fields; all-zero ids are invalid.
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, parent_id = int(trace, 16), int(parent, 16)
    if trace_id == 0 or parent_id == 0:
        return None
    return TraceParent(trace_id, parent_id, bool(int(flags, 16) & 1))


def format_traceparent(trace_id: int, span_id: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def _digest(text: str, size: int) -> int:
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=size).digest(), "big")
    return value or 1  # zero is not a valid id


def span_id_for(exchange_id: str, kind: str) -> int:
    """The synthesized span id of one side (`client` or `server`) of an exchange."""
    return _digest(f"{exchange_id}/{kind}", 8)


def span_ids_for(exchange_id: str) -> tuple[int, int]:
    """(client, server) span ids of an exchange: span_id_for both sides, in one call
    (synthesis asks both for every exchange)."""
    key = exchange_id.encode()
    client = int.from_bytes(blake2b(key + b"/client", digest_size=8).digest(), "big")
    server = int.from_bytes(blake2b(key + b"/server", digest_size=8).digest(), "big")
    return client or 1, server or 1


def trace_id_for(salt: str, key: str) -> int:
    """A trace id for a root: `key` is a test name or an exchange id, `salt` the capture."""
    return _digest(f"{salt}/{key}", 16)
