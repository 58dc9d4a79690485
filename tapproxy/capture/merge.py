"""Several captures into one: what each pytest-xdist worker (and the plugin) recorded.

Streaming: one record in memory at a time. `merge_captures` keeps the inputs one after
the other; `merge_interleaved` (the parts of `record --workers N`, each written as its
exchanges completed) interleaves them by when each record was complete.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from tapproxy.capture.format import new_header, open_capture
from tapproxy.capture.model import Exchange, Record, SessionHeader, TestCase
from tapproxy.capture.writer import CaptureWriter
from tapproxy.errors import CaptureError

__all__ = ["merge_captures", "merge_interleaved"]

# What spans are synthesized by: a recorder that injected traceparents salted them with
# its header's `created`, and `spans` reads received spans only where `otlp_receive` says.
_SPAN_META = ("otlp_receive", "inject_traceparent")


def _merged_header(first: SessionHeader | None, inputs: Sequence[str | os.PathLike],
                   meta: dict[str, object] | None) -> SessionHeader:
    header = new_header({**({k: first.meta[k] for k in _SPAN_META if k in first.meta}
                            if first else {}),
                         **(meta or {}), "merged_from": [str(p) for p in inputs]})
    return dataclasses.replace(header, created=first.created) if first else header


def merge_captures(inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
                   meta: dict[str, object] | None = None) -> int:
    """Write every record of `inputs` to `output`, a new capture; the number of records.

    The header's meta is `meta` plus `merged_from` (the inputs); its `created` and span
    settings are the first input's (the proxy's, in pytest: see _SPAN_META). An input cut short
    (a killed worker) gives its complete records; a missing or corrupt one raises
    CaptureError naming it, and `output` is left as it was.
    """
    first = open_capture(inputs[0]) if inputs else None  # each input is opened once

    def records() -> Iterator[Record]:
        for i, path in enumerate(inputs):
            with first if i == 0 else open_capture(path) as reader:
                yield from reader

    try:
        header = _merged_header(first.header if first else None, inputs, meta)
        return _write(records(), inputs, output, header)
    finally:
        if first is not None:
            first.close()


def merge_interleaved(inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
                      meta: dict[str, object] | None = None) -> int:
    """As merge_captures, records ordered by when each was complete across the inputs
    (each input's own order kept). A test case every input recorded (the same name and
    start: the workers of one run) is written once."""
    readers = [open_capture(path) for path in inputs]
    try:
        streams = [_timed(i, reader) for i, reader in enumerate(readers)]
        return _write(_once_each_test(r for _, _, r in heapq.merge(*streams)), inputs,
                      output, _merged_header(readers[0].header if readers else None, inputs,
                                             meta))
    finally:
        for reader in readers:
            reader.close()


def _timed(index: int, records) -> Iterator[tuple[int, int, Record]]:
    """(when complete, input, record); a record without a time of its own (spans, a
    tunnel) takes the one before it, so it stays where its input put it."""
    last = 0
    for record in records:
        last = max(last, _completed(record) or last)
        yield last, index, record


def _completed(record: Record) -> int | None:
    if isinstance(record, Exchange):
        t = record.timing
        return max(v for v in (t.request_start, t.request_end, t.response_end, t.error_at)
                   if v is not None)
    if isinstance(record, TestCase):
        return record.ended or record.started
    return getattr(record, "timestamp", None) or getattr(record, "received", None)


def _once_each_test(records: Iterator[Record]) -> Iterator[Record]:
    seen: set[tuple[str, int]] = set()
    for record in records:
        if isinstance(record, TestCase):
            key = (record.name, record.started)
            if key in seen:
                continue
            seen.add(key)
        yield record


def _write(records: Iterator[Record], inputs: Sequence[str | os.PathLike],
           output: str | os.PathLike, header: SessionHeader) -> int:
    output = Path(output)
    writer = CaptureWriter(output, header, provisional=True)
    count = 0
    try:
        for record in records:
            writer.write(record)
            count += 1
        writer.close()
    except BaseException:
        writer.discard()
        raise
    try:
        writer.publish()
    except CaptureError:
        writer.discard()
        raise
    return count
