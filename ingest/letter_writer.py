"""Stores the processor's dead letters on a thread of its own, then commits the raw log.

The processor makes a batch's good readings durable and visible to the sinks at once; its dead
letters go here. This thread writes them to the dead-letter store and only then commits the raw
log past the batch, so a crash in between re-processes the batch (the readings log may then hold
its records twice, which the sinks overwrite; the store counts each raw offset once). Good
readings therefore never wait on the dead-letter store: a slow store only makes the raw log's
commit lag behind. Batches are taken in order and the letters of several waiting batches are
written in one call (each message's letters stay together, as the store requires).

When more than `max_pending` batches wait, `submit` waits for room: the raw log is then not
freed, and a store that stopped answering for good would, after the raw log's quota, stop the
acks (never drop). `DeadLetterStore.add_many` does not raise and is bounded per message, so in
practice the queue stays short.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

import structlog

from ingest import internal_errors
from ingest.deadletter import DeadLetter, DeadLetterStore

log = structlog.get_logger(__name__)

_MAX_PENDING = 64


class DeadLetterWriter:
    """Writes batches of dead letters in order, and after each calls `commit(next_offset)`."""

    def __init__(
        self, store: DeadLetterStore, commit: Callable[[int], None], *, max_pending: int = _MAX_PENDING
    ) -> None:
        self._store = store
        self._commit = commit
        self._max_pending = max_pending
        self._pending: deque[tuple[Sequence[DeadLetter], int]] = deque()
        self._busy = False
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="deadletter-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, letters: Sequence[DeadLetter], next_offset: int) -> None:
        """Store `letters` (possibly none), then commit the raw log up to `next_offset`."""
        with self._changed:
            while len(self._pending) >= self._max_pending and not self._closed:
                self._changed.wait(0.2)
            self._pending.append((letters, next_offset))
            self._changed.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted is stored and committed; False on timeout."""
        with self._changed:
            if not self._thread.is_alive():
                self._write_pending_locked()
                return True
            return self._changed.wait_for(lambda: not self._pending and not self._busy, timeout)

    def stop(self, timeout: float) -> None:
        """Write what is pending (within `timeout`), then end the thread."""
        self.flush(timeout)
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending or self._closed)
                if self._closed and not self._pending:
                    return
                batches = list(self._pending)
                self._pending.clear()
                self._busy = True
                self._changed.notify_all()
            try:
                self._write(batches)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _write_pending_locked(self) -> None:
        batches = list(self._pending)
        self._pending.clear()
        self._write(batches)

    def _write(self, batches: list[tuple[Sequence[DeadLetter], int]]) -> None:
        if not batches:
            return
        letters = [letter for batch, _ in batches for letter in batch]
        if letters:
            self._store.add_many(letters)
        try:
            self._commit(batches[-1][1])
        except Exception as exc:  # the raw log closed under us at shutdown: re-processed at start
            internal_errors.report("deadletter_commit", exc)
