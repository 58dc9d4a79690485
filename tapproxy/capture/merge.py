"""Several captures into one: what each pytest-xdist worker (and the plugin) recorded.

Streaming: one record in memory at a time. Records keep the order they have within
each input; the inputs follow each other (a reader orders by time where it matters).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tapproxy.capture.format import new_header, open_capture
from tapproxy.capture.writer import CaptureWriter
from tapproxy.errors import CaptureError

__all__ = ["merge_captures"]


def merge_captures(inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
                   meta: dict[str, object] | None = None) -> int:
    """Write every record of `inputs` to `output`, a new capture; the number of records.

    The header's meta is `meta` plus `merged_from` (the inputs). An input cut short
    (a killed worker) gives its complete records; a missing or corrupt one raises
    CaptureError naming it, and `output` is left as it was.
    """
    output = Path(output)
    header = new_header({**(meta or {}), "merged_from": [str(p) for p in inputs]})
    writer = CaptureWriter(output, header, provisional=True)
    count = 0
    try:
        for path in inputs:
            with open_capture(path) as reader:
                for record in reader:
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
