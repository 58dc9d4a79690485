"""The `.tap` file: framed msgpack records, read as a stream (writing: capture.writer).

Layout (see docs/capture-format.md):

    MAGIC (8 bytes)  then frames:  length u32 BE | crc32 u32 BE | msgpack map

The first frame is the header record. A frame is written whole and flushed to
the OS after each batch, so a killed writer loses at most the frame it was
writing, and a reader can follow a file that is still growing.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack

from tapproxy.capture.codec import (
    header_from_wire,
    record_from_wire,
)
from tapproxy.capture.model import Exchange, Record, SessionHeader
from tapproxy.errors import CaptureError

__all__ = ["FORMAT_MINOR", "FORMAT_VERSION", "FRAME", "MAGIC", "CaptureReader", "new_header",
           "open_capture"]

MAGIC = b"\x93TAPCAP\n"
FORMAT_VERSION = 1  # bumped only for changes an older reader would misread
# Minor: bumped for additions (fields, record kinds) that older readers skip.
# 1 added otlp_spans records; 2 added body_size/body_sha256 (a body kept in part);
# 3 added tunnel records (connections not parsed as HTTP).
# 4 added request/response trailers and grpc_messages.
# 5 added service_log and resource_sample records (services the pytest plugin starts).
FORMAT_MINOR = 6
FRAME = struct.Struct(">II")  # payload length, CRC-32 of the payload
_MAX_FRAME = 1 << 31
_MAX_CHECK = 64 << 20  # above this, a frame past the end is taken as cut off unexamined


def new_header(meta: dict[str, object] | None = None) -> SessionHeader:
    from tapproxy import __version__

    return SessionHeader(version=FORMAT_VERSION, minor=FORMAT_MINOR, created=time.time_ns(),
                         tool=f"tapproxy {__version__}", meta=dict(meta or {}))


class CaptureReader:
    """Streams the records of a capture, one frame in memory at a time.

    After iteration, `truncated` says whether the file ended inside a record (a killed
    or still-running writer), and `problem` describes it in words.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise CaptureError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise CaptureError(f"{self.path}: is a directory, not a capture file") from None
        except OSError as e:
            raise CaptureError(f"{self.path}: cannot read: {e.strerror}") from e
        self.truncated = False
        self.problem: str | None = None
        self._offset = 0
        self._index = 0
        self._last = (0, 0)  # index and offset of the record last yielded
        self._size = 0  # the file's size when last asked
        try:
            self.header = self._read_header()
        except BaseException:
            self._file.close()
            raise

    def _fail(self, what: str) -> CaptureError:
        return CaptureError(f"{self.path}: {what}")

    def malformed(self, what: str) -> CaptureError:
        """An error naming this file and the record last yielded, for what a reader finds
        wrong inside a well-typed record later (e.g. the OTLP payload of a span batch)."""
        index, start = self._last
        return self._fail(f"record {index} at byte {start} is malformed: {what}")

    def _read_header(self) -> SessionHeader:
        magic = self._file.read(len(MAGIC))
        if magic != MAGIC:
            if not magic:
                raise self._fail("empty file, not a tapproxy capture")
            raise self._fail("not a tapproxy capture" + _guess_kind(magic))
        self._offset = len(MAGIC)
        frame = self._next_frame(header=True)
        if frame is None:
            raise self._fail("truncated before the end of its header record")
        d = frame
        if not isinstance(d, dict) or d.get("kind") != "header":
            raise self._fail("first record is not a capture header")
        version = d.get("version")
        if type(version) is not int:
            raise self._fail("header has no format version")
        if version > FORMAT_VERSION:
            raise self._fail(
                f"written by a newer tapproxy (capture format {version}); this tapproxy reads "
                f"format {FORMAT_VERSION}: upgrade tapproxy to read it"
            )
        try:
            return header_from_wire(d)
        except CaptureError as e:
            raise self._fail(f"record 0 at byte {len(MAGIC)} (header) is malformed: {e}") from None

    def _next_frame(self, header: bool = False) -> object | None:
        """The next decoded frame, or None at a clean end or a truncated tail.

        Arrays decode as tuples (records are immutable, and headers' pairs need no copy),
        except in the header record, whose free-form `meta` keeps lists.
        """
        start = self._offset
        head = self._file.read(FRAME.size)
        if not head:
            return None
        if len(head) < FRAME.size:
            return self._truncated(start)
        length, crc = FRAME.unpack(head)
        if length > _MAX_FRAME:
            raise self._fail(f"record {self._index} at byte {start} is corrupt: its length "
                             f"field says {length} bytes, more than a record can hold")
        # Never allocate what a damaged length claims: past the end it is a cut-off tail,
        # or a damaged length. The size is asked again only when the file seems too short.
        end = start + FRAME.size + length
        if end > self._size:
            self._size = os.fstat(self._file.fileno()).st_size
            if end > self._size:
                self._check_cut_off(start, length)
                return self._truncated(start)
        payload = self._file.read(length)
        if len(payload) < length:
            return self._truncated(start)
        if zlib.crc32(payload) != crc:
            raise self._fail(f"record {self._index} at byte {start} is corrupt: checksum "
                             "mismatch (damaged bytes, not a cut-off end)")
        self._offset = end
        self._index += 1
        try:
            return msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=header)
        except Exception as e:  # msgpack raises several unrelated types
            raise self._fail(f"record {self._index - 1} at byte {start} is not msgpack: {e}") from e

    def _check_cut_off(self, start: int, length: int) -> None:
        """Raise if a frame reaching past the end is not a cut-off tail but a damaged length.

        A writer killed mid-frame leaves a prefix of one msgpack map, which never parses
        whole. If a whole map (the real record) ends before the file does, the length is
        wrong. The walk reads at most the rest of the file, one frame's worth at most.
        """
        available = self._size - start - FRAME.size
        if available <= 0 or available > _MAX_CHECK:
            return
        # Limits as large as the rest of the file: a cut-off body's length exceeds what is left.
        unpacker = msgpack.Unpacker(self._file, raw=False, strict_map_key=False,
                                    read_size=min(available, 1 << 16), max_buffer_size=_MAX_CHECK,
                                    max_bin_len=_MAX_FRAME, max_str_len=_MAX_FRAME,
                                    max_array_len=_MAX_FRAME, max_map_len=_MAX_FRAME)
        try:
            unpacker.skip()
            what = "a whole record ends within them"
        except msgpack.OutOfData:
            return  # a prefix of a record: cut off (or still being written)
        except Exception:  # msgpack raises several unrelated types
            what = "they are not the start of a record"
        finally:
            self._file.seek(start)
        raise self._fail(
            f"record {self._index} at byte {start} is corrupt: its length field says {length} "
            f"bytes, only {available} follow and {what} (a damaged length, not a cut-off end)")

    def _truncated(self, start: int) -> None:
        self.truncated = True
        self.problem = (
            f"{self.path}: ends inside record {self._index} at byte {start} (the recorder was "
            "killed or is still writing); the records before it are complete"
        )
        self._file.seek(start)  # so that follow() can read the frame once it is whole
        return None

    def __iter__(self) -> Iterator[Record]:
        return self.records()

    def records(
        self, follow: bool = False, poll: float = 0.1, stop: Callable[[], bool] | None = None
    ) -> Iterator[Record]:
        """Yield each record. With `follow`, wait for more at the end until `stop()` is true."""
        while True:
            start = self._offset
            frame = self._next_frame()
            if frame is None:
                if not follow:
                    return
                if stop is not None and stop():
                    # One more read: a record may have landed between the read and stop().
                    frame = self._next_frame()
                    if frame is None:
                        return
                else:
                    self.truncated, self.problem = False, None
                    time.sleep(poll)
                    continue
            record = self._record(frame, start)
            if record is not None:
                self._last = (self._index - 1, start)
                yield record

    def _record(self, frame: object, start: int) -> Record | None:
        if not isinstance(frame, dict):
            raise self._fail(f"record {self._index - 1} at byte {start} is not a map")
        try:
            return record_from_wire(frame)
        except CaptureError as e:
            kind = frame.get("kind")
            raise self._fail(
                f"record {self._index - 1} at byte {start}"
                f"{f' ({kind})' if type(kind) is str else ''} is malformed: {e}"
            ) from None

    def raw_records(self) -> Iterator[tuple[tuple[int, int], dict]]:
        """(position, msgpack map) of each record, not decoded into a typed record: for an
        index that reads a few fields of many records (replay's; ~6 times faster than
        `records`). The fields' types are the caller's to check; `record_at` checks all."""
        while True:
            start = self._offset
            frame = self._next_frame()
            if frame is None:
                return
            if not isinstance(frame, dict):
                raise self._fail(f"record {self._index - 1} at byte {start} is not a map")
            self._last = (self._index - 1, start)
            yield self._last, frame

    @property
    def position(self) -> tuple[int, int]:
        """(record number, byte offset) of the record last yielded, for `record_at`."""
        return self._last

    def record_at(self, position: tuple[int, int]) -> Record:
        """The record at a `position` seen before, read again (ends the iteration)."""
        index, start = position
        self._file.seek(start)
        self._offset, self._index = start, index
        frame = self._next_frame()
        record = None if frame is None else self._record(frame, start)
        if record is None:
            raise self._fail(f"record {index} at byte {start} is gone: the file changed "
                             "while it was read")
        return record

    def exchanges(self) -> Iterator[Exchange]:
        """Only the exchange records, in the order they completed."""
        return (r for r in self.records() if isinstance(r, Exchange))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _guess_kind(head: bytes) -> str:
    stripped = head.lstrip()
    if stripped.startswith(b"{"):
        return " (it looks like JSON; a HAR file can be brought in with `tapproxy import`)"
    if head[:1].isdigit() and b":" in head:
        return " (it looks like a mitmproxy flow file: bring it in with `tapproxy import`)"
    return ""


def open_capture(path: str | os.PathLike) -> CaptureReader:
    """Open a capture for streaming reads (the one reader API every command uses)."""
    return CaptureReader(path)
