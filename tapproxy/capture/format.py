"""The `.tap` file: framed msgpack records, written by a thread, read as a stream.

Layout (see docs/capture-format.md):

    MAGIC (8 bytes)  then frames:  length u32 BE | crc32 u32 BE | msgpack map

The first frame is the header record. A frame is written whole and flushed to
the OS after each batch, so a killed writer loses at most the frame it was
writing, and a reader can follow a file that is still growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack

from tapproxy.capture.codec import (
    header_from_wire,
    header_to_wire,
    record_from_wire,
    record_to_wire,
)
from tapproxy.capture.model import Exchange, Record, SessionHeader
from tapproxy.errors import CaptureError

__all__ = ["FORMAT_MINOR", "FORMAT_VERSION", "MAGIC", "CaptureReader", "CaptureWriter",
           "new_header", "open_capture"]

MAGIC = b"\x93TAPCAP\n"
FORMAT_VERSION = 1  # bumped only for changes an older reader would misread
# Minor: bumped for additions (fields, record kinds) that older readers skip.
# 1 added otlp_spans records.
FORMAT_MINOR = 1
_FRAME = struct.Struct(">II")
_MAX_FRAME = 1 << 31


def new_header(meta: dict[str, object] | None = None) -> SessionHeader:
    from tapproxy import __version__

    return SessionHeader(version=FORMAT_VERSION, minor=FORMAT_MINOR, created=time.time_ns(),
                         tool=f"tapproxy {__version__}", meta=dict(meta or {}))


def _frame(obj: dict) -> bytes:
    payload = msgpack.packb(obj, use_bin_type=True)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


_STOP = object()


class CaptureWriter:
    """Appends records to a capture from a background thread.

    `submit` never blocks the caller's event loop: when the bounded queue is full it
    returns an awaitable that waits for room (backpressure), and never drops a record.
    `transform` runs on the writer thread before encoding (redaction lives there).

    With `provisional`, records go to a hidden `.NAME.part` beside `path` until
    `publish()` renames it into place, so an existing capture at `path` survives a
    recording that fails to start or an import that fails; `discard()` removes it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        header: SessionHeader,
        transform: Callable[[Record], Record] | None = None,
        max_queue: int = 4096,
        provisional: bool = False,
    ) -> None:
        self.path = Path(path)
        self._transform = transform
        self._part = self.path.with_name(f".{self.path.name}.part") if provisional else None
        try:
            self._file = open(self._part or self.path, "wb")  # noqa: SIM115 - writer thread's
        except OSError as e:
            raise CaptureError(f"{self.path}: cannot create capture: {e.strerror}") from e
        try:
            self._file.write(MAGIC + _frame(header_to_wire(header)))
            self._file.flush()
        except OSError as e:
            self._file.close()
            raise CaptureError(f"{self.path}: cannot write capture: {e.strerror}") from e
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._failure: BaseException | None = None
        self._closed = False
        self.records_written = 0
        self.bytes_written = 0
        self._thread = threading.Thread(target=self._run, name="tapproxy-writer", daemon=True)
        self._thread.start()

    def submit(self, record: Record):
        """Queue `record`; returns None, or an awaitable to await when the queue is full."""
        self._check(writing=True)
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            return self._put_when_room(record)
        return None

    async def _put_when_room(self, record: Record) -> None:
        # Wait on the event loop itself, not in an executor thread: many connections can be
        # waiting at once, and the default executor also serves DNS look-ups.
        delay = 0.001
        while True:
            await asyncio.sleep(delay)
            self._check(writing=True)
            try:
                self._queue.put_nowait(record)
                return
            except queue.Full:
                delay = min(delay * 2, 0.05)

    def write(self, record: Record) -> None:
        """Queue `record`, blocking while the queue is full (for non-async callers)."""
        self._check(writing=True)
        self._queue.put(record)

    @property
    def published(self) -> bool:
        return self._part is None

    def publish(self) -> None:
        """Put a provisional capture in place at `path` (atomic; writing carries on)."""
        if self._part is not None:
            try:
                os.replace(self._part, self.path)
            except OSError as e:
                raise CaptureError(f"{self.path}: cannot create capture: {e.strerror}") from e
            self._part = None

    def discard(self) -> None:
        """Close and remove a capture not yet published (no-op once published)."""
        with contextlib.suppress(CaptureError):  # it is being thrown away anyway
            self.close()
        if self._part is not None:
            self._part.unlink(missing_ok=True)
            self._part = None

    def flush(self) -> None:
        """Block until every record queued so far is written and flushed to the OS."""
        self._queue.join()
        self._check()

    def close(self) -> None:
        """Write what is queued, then close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        try:
            self._file.close()
        except OSError as e:
            self._failure = self._failure or e
        self._check()

    def _check(self, writing: bool = False) -> None:
        if writing and self._closed:
            raise CaptureError(f"{self.path}: the capture writer is closed")
        if self._failure is not None:
            raise CaptureError(f"{self.path}: writing failed: {self._failure}") from self._failure

    def _run(self) -> None:
        q, f = self._queue, self._file
        stop = False
        while not stop:
            batch = [q.get()]
            while len(batch) < 256:  # drain what is ready, so a burst costs one flush
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            stop = any(rec is _STOP for rec in batch)
            try:
                for rec in batch:
                    if rec is _STOP:
                        continue
                    if self._failure is None:
                        if self._transform is not None:
                            rec = self._transform(rec)
                        data = _frame(record_to_wire(rec))
                        f.write(data)
                        self.records_written += 1
                        self.bytes_written += len(data)
                f.flush()
            except BaseException as e:  # surfaced to the producer by _check()
                self._failure = e
            finally:
                for _ in batch:
                    q.task_done()
                batch = rec = None  # hold no bodies while idle


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
        try:
            self.header = self._read_header()
        except BaseException:
            self._file.close()
            raise

    def _fail(self, what: str) -> CaptureError:
        return CaptureError(f"{self.path}: {what}")

    def _read_header(self) -> SessionHeader:
        magic = self._file.read(len(MAGIC))
        if magic != MAGIC:
            if not magic:
                raise self._fail("empty file, not a tapproxy capture")
            raise self._fail("not a tapproxy capture" + _guess_kind(magic))
        self._offset = len(MAGIC)
        frame = self._next_frame()
        if frame is None:
            raise self._fail("truncated before the end of its header record")
        d = frame
        if not isinstance(d, dict) or d.get("kind") != "header":
            raise self._fail("first record is not a capture header")
        version = d.get("version")
        if not isinstance(version, int):
            raise self._fail("header has no format version")
        if version > FORMAT_VERSION:
            raise self._fail(
                f"written by a newer tapproxy (capture format {version}); this tapproxy reads "
                f"format {FORMAT_VERSION}: upgrade tapproxy to read it"
            )
        try:
            return header_from_wire(d)
        except (KeyError, TypeError) as e:
            raise self._fail(f"header record is malformed ({e})") from e

    def _next_frame(self) -> object | None:
        """The next decoded frame, or None at a clean end or a truncated tail."""
        start = self._offset
        head = self._file.read(_FRAME.size)
        if not head:
            return None
        if len(head) < _FRAME.size:
            return self._truncated(start)
        length, crc = _FRAME.unpack(head)
        if length > _MAX_FRAME:
            raise self._fail(f"record {self._index} at byte {start} is corrupt (length {length})")
        # Never allocate what a damaged length claims: past the end it is a cut-off tail.
        if start + _FRAME.size + length > os.fstat(self._file.fileno()).st_size:
            return self._truncated(start)
        payload = self._file.read(length)
        if len(payload) < length:
            return self._truncated(start)
        if zlib.crc32(payload) != crc:
            raise self._fail(f"record {self._index} at byte {start} is corrupt (checksum mismatch)")
        self._offset = start + _FRAME.size + length
        self._index += 1
        try:
            return msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except Exception as e:  # msgpack raises several unrelated types
            raise self._fail(f"record {self._index - 1} at byte {start} is not msgpack: {e}") from e

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
            if not isinstance(frame, dict):
                raise self._fail(f"record {self._index - 1} at byte {start} is not a map")
            try:
                record = record_from_wire(frame)
            except (KeyError, TypeError, ValueError) as e:
                raise self._fail(
                    f"record {self._index - 1} at byte {start} ({frame.get('kind')}) is "
                    f"malformed: missing or bad field {e}"
                ) from e
            if record is not None:
                yield record

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
