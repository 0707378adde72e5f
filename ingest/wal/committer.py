"""Group commit for the MQTT source: many appends, one fsync, then the acknowledgements.

The paho thread calls `submit(record, token)`: an append to the log's memory buffer and a list
append, nothing more. A background thread lingers `interval` seconds after the first pending
record (or less, once `max_records` are pending), calls `wal.sync()` and hands the tokens of the
records now durable to `on_durable`, in submit order; the source acknowledges those MQTT
messages there. An fsync costs milliseconds, so one per message would cap the source at a few
hundred messages per second; one per 5 ms batch keeps up with the receive path. It needs only the
log seam's `Producer` (`ingest.wal.seam`), so it acks the same way over any log behind the seam;
`str(wal)` names the log in its log lines (the WAL's directory).

When the log is full the record and its token are held, in order, and so is everything
submitted after them: nothing is dropped and nothing is acknowledged, so the broker keeps the
messages. The thread retries the held records every `interval` until consumers free space.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

from ingest.errors import WalFullError
from ingest.wal.seam import Producer

log = structlog.get_logger(__name__)

T = TypeVar("T")


class GroupCommitter(Generic[T]):
    """Appends submitted records, syncs them in groups and reports their tokens once durable."""

    def __init__(
        self,
        wal: Producer,
        on_durable: Callable[[list[T]], None],
        *,
        interval: float = 0.005,
        max_records: int = 1000,
    ) -> None:
        if interval <= 0 or max_records < 1:
            raise ValueError("interval must be positive and max_records at least 1")
        self._wal = wal
        self._on_durable = on_durable
        self._interval = interval
        self._max_records = max_records
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._tokens: list[T] = []  # of records appended, not yet synced
        self._held: deque[tuple[bytes, T]] = deque()
        self._idle = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.failed: BaseException | None = None

    @property
    def held(self) -> int:
        """Records waiting for space in the log (submitted, not appended, not acknowledged)."""
        return len(self._held)

    @property
    def full(self) -> bool:
        """The log is full and records are being held."""
        return bool(self._held)

    def submit(self, record: bytes, token: T) -> None:
        """Append `record`; `token` goes to `on_durable` once it is durable."""
        with self._lock:
            if self._stopping:
                raise RuntimeError("group committer is stopped")
            if not self._held:
                try:
                    self._wal.append(record)
                except WalFullError:
                    log.error("wal_full", directory=str(self._wal), usage=self._wal.usage_bytes())
                else:
                    self._tokens.append(token)
                    if self._idle or len(self._tokens) == self._max_records:
                        self._cond.notify()
                    return
            elif len(record) > self._wal.max_record_bytes:
                # Checked now: a record that can never be appended would block all behind it.
                raise ValueError(f"record of {len(record)} bytes exceeds max_record_bytes")
            self._held.append((record, token))

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("group committer already started")
        self._thread = threading.Thread(target=self._run, name="wal-group-commit", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Sync and report what the log holds, then end the thread; held records stay unacked."""
        with self._lock:
            self._stopping = True
            self._cond.notify()
        if self._thread is None:
            self._flush()
        else:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not (self._tokens or self._held or self._stopping):
                    self._idle = True
                    self._cond.wait()
                self._idle = False
                # Linger so that one fsync covers the records arriving meanwhile.
                if not self._stopping and len(self._tokens) < self._max_records:
                    self._cond.wait(self._interval)
                stopping = self._stopping
            try:
                self._flush()
            except Exception as exc:
                # The log is unusable (see WriteAheadLog); unacked messages stay with the broker.
                self.failed = exc
                log.exception("wal_group_commit_failed", directory=str(self._wal))
                return
            if stopping:
                return

    def _flush(self) -> None:
        with self._lock:
            if self._held:
                self._release_held()
            tokens, self._tokens = self._tokens, []
        if not tokens:
            return
        self._wal.sync()
        try:
            self._on_durable(tokens)
        except Exception:
            # The records are durable; an unacked message is redelivered and deduplicated.
            log.exception("wal_on_durable_failed", records=len(tokens))

    def _release_held(self) -> None:
        held = self._held
        while held:
            record, token = held[0]
            try:
                self._wal.append(record)
            except WalFullError:
                return
            held.popleft()
            self._tokens.append(token)
        log.info("wal_space_recovered", directory=str(self._wal))
