"""Several captures into one: what each pytest-xdist worker (and the plugin) recorded.

Streaming: one record in memory at a time. Records keep the order they have within
each input; the inputs follow each other (a reader orders by time where it matters).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from tapproxy.capture.format import new_header, open_capture
from tapproxy.capture.model import SessionHeader
from tapproxy.capture.writer import CaptureWriter
from tapproxy.errors import CaptureError

__all__ = ["merge_captures"]


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
    output = Path(output)
    writer: CaptureWriter | None = None
    count = 0
    try:
        for path in inputs:
            with open_capture(path) as reader:
                if writer is None:
                    writer = CaptureWriter(output, _merged_header(reader.header, inputs, meta),
                                           provisional=True)
                for record in reader:
                    writer.write(record)
                    count += 1
        if writer is None:
            writer = CaptureWriter(output, _merged_header(None, inputs, meta), provisional=True)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    try:
        writer.publish()
    except CaptureError:
        writer.discard()
        raise
    return count
