"""The write-ahead log itself: append, group sync, consumers and their offsets, retention.

Appends go to an in-memory list under a lock (no syscall, no copy); `sync()` frames the buffered
records, writes them with one `write` per segment touched, fsyncs and only then makes them
visible to readers. Offsets are assigned at append time, so a record's offset is known before it
is durable; `durable_offset` is the end of what readers may see.

On open, a torn or corrupt tail of the last segment is cut off (`recovery`, see recovery.py);
readers verify every record and report damage found later (`corruptions`).

A failed write or fsync leaves the log unusable until it is reopened: after a failed fsync the
kernel may have dropped the dirty pages and a retried fsync can report success for data that is
gone (PostgreSQL's "fsyncgate"), so the only safe recovery is the start-up scan.

`WriteAheadLog` is the local implementation of the log seam (`ingest.wal.seam.Log`, checked by
mypy at the end of this module). Its readers (`WalReader`) use the public methods under
"readers" below, which are not part of the seam.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
import weakref
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Final

import structlog

from config.files import make_private_dir, open_private
from ingest.errors import WalFullError
from ingest.wal.offsets import OffsetStore, fsync_directory, validate_consumer_name
from ingest.wal.reader import WalReader
from ingest.wal.recovery import Corruption, Recovery, load_segments, lock_directory, recover_tail
from ingest.wal.seam import Start
from ingest.wal.segment import (
    HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    CorruptRecordError,
    Segment,
    SegmentSpan,
    frame,
    segment_name,
)

if TYPE_CHECKING:
    from ingest.wal.seam import Log

log = structlog.get_logger(__name__)

_OFFSETS_DIR: Final = "offsets"
_first: Final = attrgetter("first")


class WriteAheadLog:
    """A durable, segmented, multi-consumer log of opaque records (see the package docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 64 * 2**20,
        quota_bytes: int = 2 * 2**30,
        fsync: bool = True,
    ) -> None:
        # A record must fit in one segment (see `max_record_bytes`) and in the u32 length field.
        if not HEADER_BYTES < segment_bytes <= MAX_PAYLOAD_BYTES:
            raise ValueError(f"segment_bytes must be in ({HEADER_BYTES}, {MAX_PAYLOAD_BYTES}]")
        # The active segment is never deleted: with a smaller quota a log whose consumers have
        # caught up could still refuse every append.
        if quota_bytes < 2 * segment_bytes:
            raise ValueError("quota_bytes must be at least twice segment_bytes")
        self.directory = directory
        self._segment_bytes = segment_bytes
        self._quota = quota_bytes
        self._fsync = fsync
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sync_lock = threading.Lock()
        self._buffer: list[bytes] = []
        self._buffered_bytes = 0
        self._closed = False
        self._failed: OSError | None = None
        self._full = False
        self._roll_requested = False
        # The readers handed out, whose segment files are closed with the log.
        self._readers: weakref.WeakSet[WalReader] = weakref.WeakSet()
        self._corruptions: list[Corruption] = []
        make_private_dir(directory)
        self._lock_fd = lock_directory(directory)
        try:
            self._segments = load_segments(directory, fsync=fsync)
            self._active_first = self._segments[-1].first
            self.recovery: Recovery | None
            self.recovery, tail_records = recover_tail(self._segments[-1], fsync=fsync)
            self._disk_bytes = sum(segment.size for segment in self._segments)
            self._end = self._durable = self._segments[-1].first + tail_records
            self._offsets = OffsetStore(directory / _OFFSETS_DIR, fsync=fsync)
            self._consumers = self._load_consumers()
            self._collect()  # a crash may have come between a commit and its deletions
            self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except BaseException:
            os.close(self._lock_fd)
            raise
        log.info(
            "wal_opened",
            directory=str(directory),
            segments=len(self._segments),
            oldest_offset=self._segments[0].first,
            end_offset=self._end,
            consumers=len(self._consumers),
        )

    # -- writing ---------------------------------------------------------------------------

    def append(self, record: bytes) -> int:
        """Buffer a record (not yet durable) and return its offset; WalFullError at the quota."""
        size = len(record) + HEADER_BYTES
        if size > self._segment_bytes:
            raise ValueError(f"record of {len(record)} bytes exceeds max_record_bytes")
        with self._lock:
            if self._closed or self._failed is not None:
                self._raise_unusable()
            if self._disk_bytes + self._buffered_bytes + size > self._quota:
                self._full = True
                raise WalFullError(
                    f"write-ahead log {self.directory} reached its quota of {self._quota} bytes"
                )
            self._buffer.append(record)
            self._buffered_bytes += size
            offset = self._end
            self._end = offset + 1
        return offset

    def sync(self) -> int:
        """Write and fsync the buffered records, wake readers; return the durable end offset."""
        with self._sync_lock:
            with self._lock:
                if self._closed or self._failed is not None:
                    self._raise_unusable()
            return self._flush()

    def close(self) -> None:
        """Sync and close; readers blocked in `read` return. Idempotent."""
        with self._sync_lock:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
            try:
                if self._failed is None:
                    self._flush()
            finally:
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1
                os.close(self._lock_fd)
                with self._lock:
                    self._cond.notify_all()
                    readers = list(self._readers)
                for reader in readers:
                    reader.close()
        log.info("wal_closed", directory=str(self.directory), end_offset=self._end)

    # -- state -----------------------------------------------------------------------------

    def __str__(self) -> str:
        return str(self.directory)

    @property
    def end_offset(self) -> int:
        """The offset the next append gets."""
        return self._end

    @property
    def durable_offset(self) -> int:
        """End (exclusive) of the records that are on disk and visible to readers."""
        return self._durable

    @property
    def oldest_offset(self) -> int:
        """Offset of the oldest retained record."""
        with self._lock:
            return self._segments[0].first

    @property
    def max_record_bytes(self) -> int:
        return self._segment_bytes - HEADER_BYTES

    @property
    def quota_bytes(self) -> int:
        return self._quota

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def corruptions(self) -> tuple[Corruption, ...]:
        """Damaged records readers have found since the log was opened."""
        with self._lock:
            return tuple(self._corruptions)

    def usage_bytes(self) -> int:
        """Bytes of all segments on disk plus buffered records, as counted against the quota."""
        with self._lock:
            return self._disk_bytes + self._buffered_bytes

    def is_full(self) -> bool:
        """An append was refused and no space has come back since, or usage reached the quota."""
        with self._lock:
            return self._full or self._disk_bytes + self._buffered_bytes >= self._quota

    # -- consumers -------------------------------------------------------------------------

    def reader(self, consumer: str, start: Start = "beginning") -> WalReader:
        """A reader for `consumer`, at its stored offset, else at the oldest record or the end."""
        validate_consumer_name(consumer)
        if start not in ("beginning", "end"):
            raise ValueError(f"start must be 'beginning' or 'end', not {start!r}")
        with self._lock:
            if self._closed:
                self._raise_unusable()
            committed = self._consumers.get(consumer)
            new = committed is None
            if committed is None:
                committed = self._segments[0].first if start == "beginning" else self._durable
                # Registered before it is stored so that retention already counts it.
                self._consumers[consumer] = committed
        if new:
            self._offsets.store(consumer, committed)
            log.info("wal_consumer_added", directory=str(self.directory), consumer=consumer, offset=committed)
        reader = WalReader(self, consumer, committed)
        with self._lock:
            self._readers.add(reader)
        return reader

    def consumers(self) -> dict[str, int]:
        """Committed offsets by consumer name."""
        with self._lock:
            return dict(self._consumers)

    def drop_consumer(self, name: str) -> None:
        """Forget a consumer that is no longer configured, so that it no longer pins segments."""
        validate_consumer_name(name)
        with self._lock:
            self._consumers.pop(name, None)
        self._offsets.remove(name)
        log.info("wal_consumer_dropped", directory=str(self.directory), consumer=name)
        self._collect()

    # -- readers (WalReader's interface to the log, `reader.SegmentedLog`) --------------------

    def commit(self, consumer: str, offset: int) -> None:
        """Durably store `consumer`'s committed offset; delete the segments every consumer passed."""
        if not 0 <= offset <= self._durable:
            raise ValueError(f"offset {offset} is outside [0, {self._durable}]")
        # Durable first: retention must never act on an offset a crash could take back.
        self._offsets.store(consumer, offset)
        with self._lock:
            self._consumers[consumer] = offset
        self._collect()

    def wait_durable(self, offset: int, timeout: float | None) -> int | None:
        """The durable end once it passes `offset`; None after `timeout` seconds (None: never)
        or once the log is closed."""
        deadline = None
        with self._cond:
            while not self._closed:
                if self._durable > offset:
                    return self._durable
                if timeout is not None:
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + timeout
                    timeout = deadline - now
                    if timeout <= 0:
                        return None
                self._cond.wait(timeout)
            return None

    @property
    def active_segment(self) -> int:
        """The first offset of the active (last) segment, read without the lock: a segment
        becomes active before any of its records is durable."""
        return self._active_first

    def locate(self, offset: int) -> SegmentSpan:
        """The segment holding `offset`, or the oldest one when `offset` is below it."""
        with self._lock:
            index = max(bisect.bisect_right(self._segments, offset, key=_first) - 1, 0)
            segment = self._segments[index]
            return SegmentSpan(segment.first, segment.path, self._next_first_locked(segment.first))

    def next_segment(self, first: int) -> int | None:
        """The first offset of the segment after the one starting at `first`; None if it is last."""
        with self._lock:
            return self._next_first_locked(first)

    def report_corruption(
        self, segment: str, offset: int, error: CorruptRecordError, skipped: int | None
    ) -> None:
        """Record and log a damaged record a reader found; `skipped` None (damage in the active
        segment) seals that segment at the next sync, so that readers resume past it."""
        corruption = Corruption(segment, offset, error.position, error.reason, skipped)
        with self._lock:
            if any(c.segment == segment and c.offset == offset for c in self._corruptions):
                return
            self._corruptions.append(corruption)
            if skipped is None:
                # Seal the damaged active segment so that readers can resume past it.
                self._roll_requested = True
        log.error(
            "wal_record_corrupt",
            directory=str(self.directory),
            segment=segment,
            offset=offset,
            byte_position=error.position,
            reason=error.reason,
            skipped_records=skipped,
        )

    # -- private ---------------------------------------------------------------------------

    def _next_first_locked(self, first: int) -> int | None:
        index = bisect.bisect_right(self._segments, first, key=_first)
        return self._segments[index].first if index < len(self._segments) else None

    def _raise_unusable(self) -> None:
        if self._failed is not None:
            raise RuntimeError(
                f"write-ahead log {self.directory} failed; reopen it to recover"
            ) from self._failed
        raise RuntimeError(f"write-ahead log {self.directory} is closed")

    def _flush(self) -> int:
        # Caller holds _sync_lock: one flush at a time, and only it touches _fd.
        with self._lock:
            records = self._buffer
            if not records:
                return self._durable
            self._buffer = []
            first = self._durable
            active = self._segments[-1]
            roll = self._roll_requested
            self._roll_requested = False
        try:
            written = self._write(records, first, active, roll)
        except OSError as exc:
            with self._lock:
                self._failed = exc
                self._cond.notify_all()
            raise
        with self._lock:
            self._durable = first + len(records)
            self._buffered_bytes -= written
            self._disk_bytes += written
            self._cond.notify_all()
            return self._durable

    def _write(self, records: list[bytes], first: int, active: Segment, roll: bool) -> int:
        """Write `records` (offsets from `first`), rolling segments as they fill; bytes written."""
        limit = self._segment_bytes
        size = active.size
        start = 0
        total = 0
        created = False
        for index, record in enumerate(records):
            framed = len(record) + HEADER_BYTES
            if size and (roll or size + framed > limit):
                self._write_out(records[start:index], active)
                active = self._roll(first + index)
                created = True
                roll = False
                start = index
                size = 0
            size += framed
            total += framed
        self._write_out(records[start:] if start else records, active)
        if self._fsync:
            os.fsync(self._fd)
            if created:
                fsync_directory(self.directory)
        return total

    def _write_out(self, records: list[bytes], segment: Segment) -> None:
        parts: list[bytes] = []
        frame(records, parts)
        data = memoryview(b"".join(parts))
        segment.size += len(data)
        while data:
            data = data[os.write(self._fd, data) :]

    def _roll(self, first: int) -> Segment:
        if self._fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        path = self.directory / segment_name(first)
        self._fd = open_private(path, os.O_WRONLY | os.O_EXCL | os.O_APPEND)
        segment = Segment(first, path, 0)
        with self._lock:
            self._segments.append(segment)
            self._active_first = first
        return segment

    def _collect(self) -> None:
        """Delete the segments every registered consumer has passed (never the active one)."""
        with self._lock:
            if not self._consumers:
                return
            floor = min(self._consumers.values())
            victims: list[Segment] = []
            while len(self._segments) > 1 and self._segments[1].first <= floor:
                victim = self._segments.pop(0)
                victims.append(victim)
                self._disk_bytes -= victim.size
            if not victims:
                return
            self._full = False
        for victim in victims:
            victim.path.unlink(missing_ok=True)
        if self._fsync:
            fsync_directory(self.directory)
        log.debug(
            "wal_segments_deleted",
            directory=str(self.directory),
            segments=[victim.path.name for victim in victims],
            oldest_offset=self._segments[0].first,
        )

    def _load_consumers(self) -> dict[str, int]:
        consumers = self._offsets.load()
        for name, offset in consumers.items():
            # Only possible after a crash with fsync disabled: the consumer committed records
            # that did not survive. Resume at the new end rather than skip future records.
            if offset > self._end:
                log.warning(
                    "wal_consumer_offset_clamped",
                    directory=str(self.directory),
                    consumer=name,
                    offset=offset,
                    end_offset=self._end,
                )
                consumers[name] = self._end
                self._offsets.store(name, self._end)
        return consumers


if TYPE_CHECKING:
    # The WAL implements the log seam; WalReader, which `reader` returns, is its Consumer.
    _implements_the_seam: type[Log] = WriteAheadLog
