"""One consumer's view of the write-ahead log: sequential reads, seeks and durable commits.

A reader keeps its segment file open and its byte position, so reading on costs no rescan; it
only locates a segment (a bisect over the in-memory index) when it crosses into the next one or
seeks elsewhere. It remembers where its last few `read` calls started, so the usual retry after
a failed sink write (`seek` back to the batch start) jumps straight there.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Final

from ingest.wal.segment import CorruptRecordError, SegmentCursor

if TYPE_CHECKING:
    from ingest.wal.log import WriteAheadLog

# (offset, segment first offset, byte position) of recent batch starts.
_MARKS: Final = 8


class WalReader:
    """Reads durable records for one named consumer and commits its progress."""

    def __init__(self, wal: WriteAheadLog, name: str, committed: int) -> None:
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
        if not 0 <= offset <= self._wal.durable_offset:
            raise ValueError(f"offset {offset} is outside [0, {self._wal.durable_offset}]")
        self._wal._commit(self.name, offset)
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
        with wal._cond:
            while not wal._closed:
                if self._stalled and self._cursor is not None:
                    after = wal._next_first_locked(self._cursor.first_offset)
                    if after is not None and after < wal._durable:
                        # Resume in the segment that sealed the damaged one off.
                        self._stalled = False
                        self._position = self._cursor_end = after
                if not self._stalled and self._position < wal._durable:
                    self._available = wal._durable
                    # Snapshot under the same lock as the durable end: a segment is indexed
                    # before any of its records become durable.
                    if self._cursor is not None and self._cursor_end is None:
                        self._cursor_end = wal._next_first_locked(self._cursor.first_offset)
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                wal._cond.wait(remaining)
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
        first, path, after = self._wal._locate(position)
        while True:
            try:
                cursor = SegmentCursor(path, first)
                break
            except FileNotFoundError:
                # Retention deleted it after it was located (it unlinks after unindexing).
                located = self._wal._locate(position)
                if located[1] == path:
                    raise
                first, path, after = located
        self._cursor = cursor
        self._cursor_end = after
        self._wal._track(self, has_file=True)
        # Below the oldest retained record (deleted meanwhile): clamp, as seek does.
        self._position = max(position, first)
        return cursor

    def _skip_damaged(self, error: CorruptRecordError) -> None:
        cursor = self._cursor
        assert cursor is not None
        end = self._cursor_end
        self._wal._report_corruption(
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
            self._wal._track(self, has_file=False)
