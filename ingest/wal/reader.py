"""One consumer's view of the write-ahead log: sequential reads, seeks and durable commits.

A reader keeps its segment file open and its byte position, so reading on costs no rescan; it
only locates a segment (a bisect over the in-memory index) when it crosses into the next one or
seeks elsewhere. It remembers where its last few `read` calls started, so the usual retry after
a failed sink write (`seek` back to the batch start) jumps straight there.

A reader uses only the log's public interface, the part listed in `SegmentedLog`, so this
module does not import `ingest.wal.log` (which imports it). `WalReader` is the WAL's
`ingest.wal.seam.Consumer`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Final, Protocol

from ingest.wal.segment import CorruptRecordError, SegmentCursor, SegmentSpan

# (offset, segment first offset, byte position) of recent batch starts.
_MARKS: Final = 8


class SegmentedLog(Protocol):
    """What a reader needs from `WriteAheadLog`: its public interface towards its readers."""

    @property
    def durable_offset(self) -> int: ...

    @property
    def oldest_offset(self) -> int: ...

    def wait_durable(self, offset: int, timeout: float | None) -> int | None:
        """The durable end once it passes `offset`; None on timeout or once the log is closed."""
        ...

    @property
    def active_segment(self) -> int:
        """The first offset of the active segment (indexed before any of its records is durable)."""
        ...

    def locate(self, offset: int) -> SegmentSpan:
        """The segment holding `offset`, or the oldest one when `offset` is below it."""
        ...

    def next_segment(self, first: int) -> int | None:
        """The first offset of the segment after the one starting at `first`; None if it is last."""
        ...

    def commit(self, consumer: str, offset: int) -> None:
        """Durably store `consumer`'s committed offset."""
        ...

    def report_corruption(
        self, segment: str, offset: int, error: CorruptRecordError, skipped: int | None
    ) -> None:
        """Record and log a damaged record; `skipped` None seals the damaged active segment."""
        ...


class WalReader:
    """Reads durable records for one named consumer and commits its progress."""

    def __init__(self, wal: SegmentedLog, name: str, committed: int) -> None:
        self.name = name
        self._wal = wal
        self._committed = committed
        self._position = committed
        self._cursor: SegmentCursor | None = None
        # First offset of the segment after the cursor's; None while the cursor's is the last.
        self._cursor_end: int | None = None
        # The active segment is damaged at the position: wait for the segment sealing it off.
        self._stalled = False
        self._available = 0
        self._marks: deque[tuple[int, int, int]] = deque(maxlen=_MARKS)
        self._io = threading.Lock()

    @property
    def position(self) -> int:
        """The offset `read` returns next."""
        return self._position

    @property
    def committed(self) -> int:
        """The last committed offset (exclusive)."""
        return self._committed

    def read(self, max_records: int, timeout: float | None = 0.0) -> list[tuple[int, bytes]]:
        """Up to `max_records` durable (offset, record) pairs, oldest first.

        Waits up to `timeout` seconds (None: forever) when nothing is available; returns []
        on timeout and as soon as the log is closed.
        """
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        with self._io:
            if not self._wait(timeout):
                return []
            return self._read(max_records)

    def seek(self, offset: int) -> None:
        """Read from `offset` next; offsets below the oldest retained record clamp to it."""
        if not 0 <= offset <= self._wal.durable_offset:
            raise ValueError(f"offset {offset} is outside [0, {self._wal.durable_offset}]")
        with self._io:
            self._position = max(offset, self._wal.oldest_offset)
            if self._stalled:
                self._stalled = False
                self._drop_cursor()

    def commit(self, offset: int) -> None:
        """Durably record that every record below `offset` is done; frees passed segments."""
        self._wal.commit(self.name, offset)
        self._committed = offset

    def lag(self) -> int:
        """Durable records not yet committed by this consumer."""
        return self._wal.durable_offset - self._committed

    def close(self) -> None:
        """Release the open segment file; a later `read` reopens it."""
        with self._io:
            self._drop_cursor()

    # -- private ---------------------------------------------------------------------------

    def _wait(self, timeout: float | None) -> bool:
        """Wait until something is readable; False on timeout or when the log is closed."""
        wal = self._wal
        deadline = None if timeout is None else time.monotonic() + timeout
        past = self._position
        while (durable := wal.wait_durable(past, timeout)) is not None:
            # A segment is indexed (and active) before any of its records becomes durable, so
            # looking at the segments after reading the durable end sees all that hold records below it.
            if self._stalled and self._cursor is not None:
                after = wal.next_segment(self._cursor.first_offset)
                if after is not None and after < durable:
                    # Resume in the segment that sealed the damaged one off.
                    self._stalled = False
                    self._position = self._cursor_end = after
            if not self._stalled:
                self._available = durable
                cursor = self._cursor
                if cursor is not None and self._cursor_end is None:
                    first = cursor.first_offset
                    # Reading on in the active segment (the usual case) needs no look-up, no lock.
                    if first != wal.active_segment:
                        self._cursor_end = wal.next_segment(first)
                return True
            # Stalled in a damaged active segment: wait for the sync that seals it off.
            past = durable
            if deadline is not None:
                timeout = max(0.0, deadline - time.monotonic())
        return False

    def _read(self, max_records: int) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        while self._position < self._available and len(out) < max_records and not self._stalled:
            try:
                cursor = self._cursor_at_position()
                if not out:
                    self._marks.append((cursor.offset, cursor.first_offset, cursor.position))
                record = cursor.next()
                if record is None:
                    raise CorruptRecordError("missing_records", cursor.position)
            except CorruptRecordError as exc:
                self._skip_damaged(exc)
                continue
            out.append((self._position, record))
            self._position += 1
        return out

    def _cursor_at_position(self) -> SegmentCursor:
        position = self._position
        cursor = self._cursor
        if cursor is not None and (
            position < cursor.first_offset or (self._cursor_end is not None and position >= self._cursor_end)
        ):
            self._drop_cursor()
            cursor = None
        if cursor is None:
            cursor = self._open(position)
        elif cursor.offset > position:
            marks = [m for m in self._marks if m[1] == cursor.first_offset and m[0] <= position]
            if marks:
                offset, _, byte_position = max(marks)
                cursor.rewind(offset, byte_position)
            else:
                self._drop_cursor()
                cursor = self._open(position)
        cursor.skip_to(self._position)
        return cursor

    def _open(self, position: int) -> SegmentCursor:
        first, path, after = self._wal.locate(position)
        while True:
            try:
                cursor = SegmentCursor(path, first)
                break
            except FileNotFoundError:
                # Retention deleted it after it was located (it unlinks after unindexing).
                located = self._wal.locate(position)
                if located.path == path:
                    raise
                first, path, after = located
        self._cursor = cursor
        self._cursor_end = after
        # Below the oldest retained record (deleted meanwhile): clamp, as seek does.
        self._position = max(position, first)
        return cursor

    def _skip_damaged(self, error: CorruptRecordError) -> None:
        cursor = self._cursor
        assert cursor is not None
        end = self._cursor_end
        self._wal.report_corruption(
            cursor.path.name, cursor.offset, error, None if end is None else end - cursor.offset
        )
        if end is None:
            self._stalled = True
        else:
            self._position = end
            self._drop_cursor()

    def _drop_cursor(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
            self._cursor_end = None
