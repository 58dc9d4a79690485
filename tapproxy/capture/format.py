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
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import msgpack

from tapproxy.capture.codec import (
    header_from_wire,
    record_from_wire,
)
from tapproxy.capture.fastwire import (
    KIND_BYTES,
    WIRE_KINDS,
    ExchangeWire,
    Unusual,
    decode_exchange_wire,
    decode_parties,
    decode_record,
    peek_kind,
)
from tapproxy.capture.index import read_index
from tapproxy.capture.model import Exchange, Party, Record, SessionHeader, Tunnel
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
# 6 added pid and command to parties named by their process.
# 7 added the closing index and index_end records (capture.index).
FORMAT_MINOR = 7
FRAME = struct.Struct(">II")  # payload length, CRC-32 of the payload
_MAX_FRAME = 1 << 31
_MAX_CHECK = 64 << 20  # above this, a frame past the end is taken as cut off unexamined
_EXCHANGE_BYTES = next(b for b, k in KIND_BYTES.items() if k == "exchange")


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
        self._first = self._offset  # where the records start

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
        payload = self._next_payload()
        if payload is None:
            raise self._fail("truncated before the end of its header record")
        d = self._unpack(payload, len(MAGIC), header=True)
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

    def _next_payload(self) -> bytes | None:
        """The next frame's payload, its CRC checked; None at a clean end or a truncated
        tail."""
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
        return payload

    def _unpack(self, payload: bytes, start: int, header: bool = False) -> object:
        """A payload as msgpack builds it, for `codec` to check field by field.

        Arrays decode as tuples (records are immutable, and headers' pairs need no copy),
        except in the header record, whose free-form `meta` keeps lists.
        """
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
        self, follow: bool = False, poll: float = 0.1, stop: Callable[[], bool] | None = None,
        kinds: Collection[type] | None = None,
    ) -> Iterator[Record]:
        """Yield each record. With `follow`, wait for more at the end until `stop()` is true.

        `kinds` (record types, e.g. (Exchange, TestCase)): only those; the others are
        skipped without being decoded where their kind can be seen from their first bytes.
        """
        wanted = None if kinds is None else frozenset(WIRE_KINDS[k] for k in kinds)
        types = None if kinds is None else tuple(kinds)
        while True:
            start = self._offset
            payload = self._next_payload()
            if payload is None:
                if not follow:
                    return
                if stop is not None and stop():
                    # One more read: a record may have landed between the read and stop().
                    payload = self._next_payload()
                    if payload is None:
                        return
                else:
                    self.truncated, self.problem = False, None
                    time.sleep(poll)
                    continue
            peeked = peek_kind(payload)
            if peeked is not None:
                kind = KIND_BYTES.get(peeked)
                if kind is None or (wanted is not None and kind not in wanted):
                    continue  # a kind this version does not know, or one not asked for
            record = self._decode(payload, start, peeked)
            if record is None or (types is not None and not isinstance(record, types)):
                continue
            self._last = (self._index - 1, start)
            yield record

    def _decode(self, payload: bytes, start: int, peeked: bytes | None) -> Record | None:
        """The record in `payload`: the fast path for the common shape, else `codec`."""
        kind = None if peeked is None else KIND_BYTES.get(peeked)
        if kind is not None:
            try:
                return decode_record(kind, payload)
            except Unusual:
                pass
        return self._record(self._unpack(payload, start), start)

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
            payload = self._next_payload()
            if payload is None:
                return
            frame = self._unpack(payload, start)
            if not isinstance(frame, dict):
                raise self._fail(f"record {self._index - 1} at byte {start} is not a map")
            self._last = (self._index - 1, start)
            yield self._last, frame

    def lean_records(self, kinds: Collection[type] = (Tunnel,)
                     ) -> Iterator[ExchangeWire | Record]:
        """Exchanges, and records of `kinds` as they are; each exchange of the common
        shape as its checked wire form (`fastwire.ExchangeWire`: `fastwire.exchange_of`
        builds the record), any other as the record itself. For a pass that reads a few
        fields of every exchange and the whole of few (diff): building records is most
        of reading."""
        exchange = _EXCHANGE_BYTES
        wanted = frozenset(WIRE_KINDS[k] for k in kinds)
        types = (Exchange, *kinds)
        while (payload := self._next_payload()) is not None:
            start = self._offset - FRAME.size - len(payload)
            peeked = peek_kind(payload)
            if peeked == exchange:
                try:
                    record: object = decode_exchange_wire(payload)
                except Unusual:
                    record = self._decode(payload, start, peeked)
            elif peeked is not None and KIND_BYTES.get(peeked) not in wanted:
                continue
            else:
                record = self._decode(payload, start, peeked)
                if not isinstance(record, types):
                    continue
            self._last = (self._index - 1, start)
            yield record  # type: ignore[misc]

    def lean_record_at(self, position: tuple[int, int]) -> ExchangeWire | Record:
        """The record at a `position` seen before, as `lean_records` gave it."""
        index, start = position
        self._file.seek(start)
        self._offset, self._index = start, index
        payload = self._next_payload()
        if payload is not None and peek_kind(payload) == _EXCHANGE_BYTES:
            try:
                return decode_exchange_wire(payload)
            except Unusual:
                pass
        return self.record_at(position)

    @property
    def position(self) -> tuple[int, int]:
        """(record number, byte offset) of the record last yielded, for `record_at`."""
        return self._last

    def record_at(self, position: tuple[int, int]) -> Record:
        """The record at a `position` seen before, read again (ends the iteration)."""
        index, start = position
        self._file.seek(start)
        self._offset, self._index = start, index
        payload = self._next_payload()
        record = None if payload is None else self._decode(payload, start, peek_kind(payload))
        if record is None:
            raise self._fail(f"record {index} at byte {start} is gone: the file changed "
                             "while it was read")
        return record

    def process_parties(self) -> Iterator[tuple[Party, Party]]:
        """(caller, callee) of each exchange where either was named by its process (has
        a pid), the rest of each record left unbuilt: for a first pass that needs only
        which process was given which name (GivenNames)."""
        while (payload := self._next_payload()) is not None:
            if payload.find(b"pid") < 0:  # (`in` costs an exception raised and cleared)
                # A pid is written only where there is one, under the key "pid": without
                # those bytes anywhere, no party of the record has one (most records).
                continue
            peeked = peek_kind(payload)
            if peeked is not None and KIND_BYTES.get(peeked) != "exchange":
                continue
            if peeked is not None:
                try:
                    pair = decode_parties(payload)
                except Unusual:
                    pass
                else:
                    if pair is not None:
                        yield pair
                    continue
            start = self._offset - FRAME.size - len(payload)
            record = self._decode(payload, start, None)
            if isinstance(record, Exchange) and (record.caller.pid is not None
                                                 or record.callee.pid is not None):
                yield record.caller, record.callee

    def index(self) -> dict[str, bytes] | None:
        """The index of tests written at the end of a capture closed cleanly (see
        capture.index: read it with `records_of_tests`); None when there is no sound one.
        Reading it leaves the iteration where it was."""
        try:
            return read_index(self._file, self._first, os.fstat(self._file.fileno()).st_size)
        except OSError:
            return None
        finally:
            self._file.seek(self._offset)

    def rewind(self) -> None:
        """Start the iteration again from the first record."""
        self.resume((1, self._first))

    @property
    def next_position(self) -> tuple[int, int]:
        """(record number, byte offset) where the iteration goes on: for `resume`."""
        return self._index, self._offset

    def resume(self, position: tuple[int, int]) -> None:
        """Go on iterating from a `next_position` seen before (after `record_at`)."""
        self._index, self._offset = position
        self._file.seek(self._offset)
        self.truncated, self.problem = False, None

    def exchanges(self) -> Iterator[Exchange]:
        """Only the exchange records, in the order they completed."""
        return self.records(kinds=(Exchange,))  # type: ignore[return-value]

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
