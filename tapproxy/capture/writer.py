"""Appending records to a `.tap` file without slowing the proxy down.

The split between threads follows what benchmarks/ measured on the proxy's hot path:
- the caller (mitmproxy's event loop) encodes a record into its frame: ~15 µs, pure CPU;
- a writer thread does the I/O, with the GIL released: one `os.writev` per batch.
The writer is not woken per record: it wakes every few milliseconds (or at once for
flush and close) and takes whatever accumulated. Waking it per record, and encoding on
it, cost 20% of the proxy's throughput through GIL hand-offs. Bodies of 64 KiB and more
are not copied into the frame: they are written from their own buffer and their CRC is
computed on the writer thread (isal's crc32, which gives zlib's values 18 times faster).

The capture's footprint in the page cache is bounded (Linux): each completed 32 MiB
window is handed to writeback at once, and the window before it, written by then, is
dropped from the cache. Letting gigabytes of capture pile up in the cache made every
further MiB cost 2.4 ms of kernel time on a VM whose memory is backed lazily (fresh
pages fault on the host); recycling the same pages keeps it at ~0.2 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import stat
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import msgpack
import msgspec
from isal import isal_zlib

from tapproxy.capture.codec import check_reads_back, header_to_wire, record_to_wire
from tapproxy.capture.format import FRAME, MAGIC
from tapproxy.capture.index import IndexBuilder, end_frame
from tapproxy.capture.model import Exchange, Record, SessionHeader, SpanBatch, WebSocketMessage
from tapproxy.errors import CaptureError

__all__ = ["CaptureWriter", "encode_frame"]

_BIG = 1 << 16  # bodies from this size are written in place, not copied (bin 32 sizes)
# msgspec's encoder writes the same bytes as msgpack.packb(use_bin_type=True) for every
# value a wire map holds (tests/capture/test_writer.py), three times faster: 2.5 µs less
# for each small exchange on the proxy's event loop.
_pack = msgspec.msgpack.Encoder().encode
_INTERVAL = 0.05  # how long records may wait for the writer thread, at most
_IOV_MAX = 512  # buffers per writev call (Linux allows 1024)
_EAGER = 16 << 20  # waiting bytes past which the writer is woken at once
_WINDOW = 32 << 20  # page-cache window: written back, then dropped, a window later

# sync_file_range(2) flags
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's sync_file_range (Linux), or None where there is none."""
    if not hasattr(os, "posix_fadvise"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


class _Spliced:
    """A frame whose payload includes big bodies by reference; its CRC is still to do."""

    __slots__ = ("length", "pieces")

    def __init__(self, pieces: list, length: int) -> None:
        self.pieces = pieces
        self.length = length


def _pieces(obj, packer: msgpack.Packer, out: list) -> None:
    # Byte-identical to packb(obj): msgpack picks header sizes from lengths alone.
    if isinstance(obj, dict):
        out.append(packer.pack_map_header(len(obj)))
        for k, v in obj.items():
            out.append(packer.pack(k))
            _pieces(v, packer, out)
    elif isinstance(obj, bytes) and len(obj) >= _BIG:
        # msgpack bin 32 (0xc6): what packb uses for any length from 2**16 on.
        out.append(b"\xc6" + len(obj).to_bytes(4, "big"))
        out.append(obj)
    else:
        out.append(packer.pack(obj))


def _has_big(record: Record) -> bool:
    if isinstance(record, Exchange):
        r = record.response
        return len(record.request.body) >= _BIG or (r is not None and len(r.body) >= _BIG)
    if isinstance(record, WebSocketMessage):
        return len(record.content) >= _BIG
    return isinstance(record, SpanBatch) and len(record.payload) >= _BIG


def encode_frame(wire: dict, big: bool = False) -> bytes | _Spliced:
    """A whole frame as bytes, or (`big`: the record carries bodies of 64 KiB or more) a
    _Spliced one that refers to those bodies instead of copying them."""
    if not big:
        payload = _pack(wire)
        return FRAME.pack(len(payload), zlib.crc32(payload)) + payload
    raw: list = []
    _pieces(wire, msgpack.Packer(use_bin_type=True), raw)
    pieces: list = []  # small runs joined, big bodies kept as they are
    run: list[bytes] = []
    for p in raw:
        if len(p) >= _BIG:
            if run:
                pieces.append(b"".join(run))
                run = []
            pieces.append(p)
        else:
            run.append(p)
    if run:
        pieces.append(b"".join(run))
    return _Spliced(pieces, sum(len(p) for p in pieces))


def _size(item: bytes | _Spliced) -> int:
    return len(item) if isinstance(item, bytes) else FRAME.size + item.length


def _buffers(item: bytes | _Spliced) -> list:
    if isinstance(item, bytes):
        return [item]
    crc = 0
    for p in item.pieces:
        crc = isal_zlib.crc32(p, crc)
    return [FRAME.pack(item.length, crc), *item.pieces]


def _special(path: Path) -> bool:
    """Whether `path` exists as something other than a regular file (device, FIFO)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


class CaptureWriter:
    """Appends records to a capture: encoded by the caller, written by a thread.

    `submit` never blocks the caller's event loop: past `max_queue` records or
    `max_bytes` waiting, it returns an awaitable that waits for room (backpressure), and
    never drops a record. `transform` (redaction, routes) runs in `submit`.

    With `provisional`, records go to a hidden `.NAME.part` beside `path` until
    `publish()` renames it into place, so an existing capture at `path` survives a
    recording that fails to start or an import that fails; `discard()` removes it.

    With `check` (the default), a record is refused (CaptureError naming the field)
    unless the reader would read it back equal: the reader's own decoding is run on it.
    That more than doubles what `submit` costs its caller (21 → 50 µs for a small
    exchange, measured on a loaded 2-core VM); a caller whose records are sound by
    construction and whose time is precious (the recorder, on mitmproxy's event loop)
    may turn it off with check=False.
    A `path` that exists and is not a regular file (/dev/null, a FIFO) is written
    directly: renaming over it would replace the device or pipe with a file.

    When a write fails (a full disk), the writer stops writing: the file is cut back to
    its last whole record, `on_failure(message)` is called once (on the writer thread),
    and every record not written is counted in `records_lost`. `submit` goes on accepting
    records (counting them lost) so a proxy keeps forwarding; `write`, `flush` and
    `close` raise CaptureError naming the file and the error.

    With `index` (the default), `close` ends a regular file with the index of tests
    (capture.index): where each test's records are, so that readers find one test's
    without reading the capture. Until then it keeps 16 bytes per record of a test (at
    most 8 Mi of them: a longer recording ends without an index).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        header: SessionHeader,
        transform: Callable[[Record], Record] | None = None,
        max_queue: int = 4096,
        provisional: bool = False,
        max_bytes: int = 256 << 20,
        on_failure: Callable[[str], None] | None = None,
        check: bool = True,
        index: bool = True,
    ) -> None:
        self.path = Path(path)
        self._reads_back = check
        self._transform = transform
        self._on_failure = on_failure
        if provisional and _special(self.path):
            provisional = False
        self._part = self.path.with_name(f".{self.path.name}.part") if provisional else None
        target = self._part or self.path
        try:
            self._fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise CaptureError(f"{self.path}: cannot create capture: {e.strerror}") from e
        try:
            head = encode_frame(header_to_wire(header))
            assert isinstance(head, bytes)  # a header carries no bodies
            os.write(self._fd, MAGIC + head)
            regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        except OSError as e:
            os.close(self._fd)
            raise CaptureError(f"{self.path}: cannot write capture: {e.strerror}") from e
        # Page-cache release: only for regular files (not /dev/null, pipes).
        self._sync_range = _sync_file_range() if regular else None
        self._index = IndexBuilder() if index and regular else None
        self._head_size = len(MAGIC) + len(head)
        self._released = 0  # the capture's bytes before this are handed to writeback
        self._max_queue, self._max_bytes = max_queue, max_bytes
        self._pending: list = []  # appended by callers, swapped out by the writer thread
        # Each counter is written by one thread only, so no lock is needed for them.
        self._submitted = self._submitted_bytes = 0
        self.records_written = self.bytes_written = 0
        self._handled = 0  # records the writer thread is done with: written or lost
        self._lost_by_writer = 0  # records in batches that failed or came after a failure
        self._lost_on_submit = 0  # records submitted once the failure was known
        self._failure: BaseException | None = None
        self._closed = self._stopping = False
        self._wake = threading.Event()
        self._written = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tapproxy-writer", daemon=True)
        self._thread.start()

    # -- producing ------------------------------------------------------------------------

    @property
    def records_lost(self) -> int:
        """Records accepted but not in the file, because writing failed."""
        return self._lost_by_writer + self._lost_on_submit

    @property
    def failure(self) -> str | None:
        """What made writing fail, naming the file; None while all is well."""
        return None if self._failure is None else self._describe(self._failure)

    def _describe(self, e: BaseException) -> str:
        if isinstance(e, OSError) and e.errno is not None:
            code = errno.errorcode.get(e.errno, str(e.errno))
            return f"{self.path}: cannot write the capture: {e.strerror or e} ({code})"
        return f"{self.path}: cannot write the capture: {e}"

    @property
    def disk_full(self) -> bool:
        """Writing failed because the filesystem (or quota) is full."""
        return isinstance(self._failure, OSError) and self._failure.errno in (
            errno.ENOSPC, errno.EDQUOT)

    def _enqueue(self, record: Record) -> None:
        if self._closed:
            raise CaptureError(f"{self.path}: the capture writer is closed")
        if self._failure is not None:
            self._lost_on_submit += 1  # already reported once; the caller carries on
            return
        try:
            if self._transform is not None:
                record = self._transform(record)
            wire = record_to_wire(record)
            item = encode_frame(wire, _has_big(record))
            if self._reads_back:
                check_reads_back(record, wire)
        except Exception as e:  # a record that cannot be encoded is named, not dropped quietly
            raise CaptureError(f"{self.path}: cannot record a {type(record).__name__}: "
                               f"{e}") from e
        if self._index is not None:
            self._index.add(record, self._submitted + 1, self._head_size + self._submitted_bytes)
        self._pending.append(item)
        self._submitted += 1
        self._submitted_bytes += _size(item)
        if self._submitted_bytes - self.bytes_written > _EAGER and not self._wake.is_set():
            self._wake.set()  # big bodies: write now rather than let megabytes pile up

    def _full(self) -> bool:
        return (self._submitted - self._handled > self._max_queue
                or self._submitted_bytes - self.bytes_written > self._max_bytes)

    @property
    def closed(self) -> bool:
        """Closed: nothing more can be written."""
        return self._closed

    def submit(self, record: Record):
        """Add `record`; returns None, or an awaitable to await while the writer catches up."""
        self._enqueue(record)
        return self._wait_for_room() if self._full() else None

    async def _wait_for_room(self) -> None:
        # Polled on the event loop itself: no executor thread per waiting connection.
        self._wake.set()
        delay = 0.001
        while self._full() and self._failure is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def write(self, record: Record) -> None:
        """Add `record`, blocking while the writer catches up (for non-async callers)."""
        self._check(writing=True)
        self._enqueue(record)
        if self._full():
            self._wake.set()
            with self._written:
                self._written.wait_for(lambda: not self._full() or self._failure is not None)
            self._check()

    def flush(self) -> None:
        """Block until every record added so far is written to the OS, or counted lost."""
        target = self._submitted
        self._wake.set()
        # After a failure the writer thread still goes through what was queued, counting it
        # lost: waiting for that makes records_lost final for everything before the flush.
        with self._written:
            self._written.wait_for(
                lambda: self._handled >= target or not self._thread.is_alive())
        self._check()

    # -- the file ---------------------------------------------------------------------------

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

    def close(self) -> None:
        """Write what was added, then close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join()
        if self._index is not None and self._index.usable and self._failure is None:
            self._write_index()
        try:
            os.close(self._fd)
        except OSError as e:
            self._failure = self._failure or e
        self._check()

    def _write_index(self) -> None:
        """The closing index (capture.index). Not a record of the capture: not counted,
        and a failure to write it leaves the capture as it was, without one."""
        offset = self._head_size + self.bytes_written
        frame = encode_frame(self._index.wire(self.records_written))
        assert isinstance(frame, bytes)  # no bodies: never spliced
        try:
            self._write_batch([frame, end_frame(offset)])
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, offset)
        self._index = None

    def _check(self, writing: bool = False) -> None:
        if writing and self._closed:
            raise CaptureError(f"{self.path}: the capture writer is closed")
        if self._failure is not None:
            raise CaptureError(self._describe(self._failure)) from self._failure

    def _write_batch(self, buffers: list) -> None:
        """Write buffers in order (the seam tests use to stand in for a slow or full disk)."""
        for i in range(0, len(buffers), _IOV_MAX):
            chunk = buffers[i:i + _IOV_MAX]
            want = sum(len(b) for b in chunk)
            done = os.writev(self._fd, chunk)
            if done < want:  # a short write: finish it piece by piece
                rest = b"".join(bytes(b) for b in chunk)[done:]
                while rest:
                    rest = rest[os.write(self._fd, rest):]

    def _release_cache(self) -> None:
        """Hand each completed window to writeback; drop the one before it from the cache.

        Only hints to the kernel: the data is in the file either way, so a failure here
        (a filesystem without the call) just turns the release off."""
        end = self._head_size + self.bytes_written
        while self._sync_range is not None and end - self._released >= _WINDOW:
            start = self._released
            if self._sync_range(self._fd, start, _WINDOW, _WRITE) != 0:
                self._sync_range = None
                return
            if start >= _WINDOW:
                older = start - _WINDOW
                self._sync_range(self._fd, older, _WINDOW, _WAIT_BEFORE | _WRITE | _WAIT_AFTER)
                try:
                    os.posix_fadvise(self._fd, older, _WINDOW, os.POSIX_FADV_DONTNEED)
                except OSError:
                    self._sync_range = None
                    return
            self._released += _WINDOW

    def _failed(self, e: BaseException) -> None:
        """Stop writing after `e`: cut the file back to its last whole record, say so once.

        Cutting back keeps the capture readable to the end (a partial frame would read as
        a recorder that was killed) and gives the space of the partial batch back."""
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.fstat(self._fd).st_mode):
                os.ftruncate(self._fd, self._head_size + self.bytes_written)
        if self._on_failure is not None:
            with contextlib.suppress(Exception):  # reporting must not kill the writer thread
                self._on_failure(self._describe(e))
        self._failure = e  # only now visible to others: the report above comes first

    def _run(self) -> None:
        while True:
            stopping = self._stopping
            if not stopping:
                self._wake.wait(_INTERVAL)
                self._wake.clear()
            # Swapping the list is atomic under the GIL: an append lands in one or the other.
            batch, self._pending = self._pending, []
            if batch and self._failure is None:
                try:
                    buffers = [b for item in batch for b in _buffers(item)]
                    self._write_batch(buffers)
                    self.bytes_written += sum(_size(i) for i in batch)
                    self.records_written += len(batch)
                    self._release_cache()
                except BaseException as e:  # surfaced to producers by _check()
                    self._failed(e)
            if self._failure is not None and batch:
                self._lost_by_writer += len(batch)
            self._handled += len(batch)
            batch = buffers = None  # hold no bodies while idle
            with self._written:
                self._written.notify_all()
            if stopping and not self._pending:
                return
