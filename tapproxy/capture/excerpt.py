"""One test's records out of a capture, as a capture of their own (bytes, same framing).

The control API answers these to a harness that cannot read the proxy's capture file
(a compose sidecar, another host); the harness reads them back with `open_capture`.
"""

from __future__ import annotations

import os

from tapproxy.capture.codec import header_to_wire, record_to_wire
from tapproxy.capture.format import MAGIC, new_header, open_capture
from tapproxy.capture.model import Record, TestCase
from tapproxy.capture.writer import encode_frame

__all__ = ["records_of_test"]


def _belongs(record: Record, test: str) -> bool:
    if isinstance(record, TestCase):
        return record.name == test
    return getattr(record, "test", None) == test


def records_of_test(path: str | os.PathLike, test: str) -> bytes:
    """A whole capture (magic, header, frames) of the records of `test` in `path`."""
    parts = [MAGIC, encode_frame(header_to_wire(new_header({"excerpt_of": str(path),
                                                             "test": test})))]
    with open_capture(path) as reader:
        for record in reader:
            if _belongs(record, test):
                parts.append(encode_frame(record_to_wire(record)))
    return b"".join(parts)  # type: ignore[arg-type]  # small frames are bytes
