"""The processor stage: a thread that runs the core over the raw log and logs what it gives.

It consumes the raw write-ahead log with its own durable offset. Each batch is decoded and
validated (`ingest.processor.batch`, in worker processes by default), the good readings of each
message are appended as one record to the readings log and every rejection goes to the
dead-letter store. Only when both are durable does it commit its offset: the readings log is
synced at once, so good readings never wait on the dead-letter store; `DeadLetterWriter` stores
the letters on a thread of its own and then commits. A crash therefore re-processes a batch: the
readings log may then hold a message twice (sinks overwrite, the alert engine skips what it has
evaluated) and the dead-letter store ignores the repeat (it counts each raw offset once). When
the readings log reaches its quota mid-batch, the part already done is synced and committed
before waiting for room: appended records stay invisible to the sinks until synced, so waiting
with them unsynced would wait forever.

Supervision. Per-message errors never reach the loop (`process_batch` contains them). A lost
worker or a fault of our own rewinds to the committed offset and retries once; a second failure
at the same offset processes the batch message by message, and a message that kills its worker
is dead-lettered (`internal_error`) instead of stopping the stage.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from ingest import internal_errors, telemetry
from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.errors import WalFullError
from ingest.letter_writer import DeadLetterWriter
from ingest.processor.batch import Processed, internal_letter, process_batch, readable
from ingest.processor.core import MessageProcessor
from ingest.processor.worker import WorkerProcess
from ingest.telemetry import LogFormat
from ingest.wal import Consumer, Producer

log = structlog.get_logger(__name__)

# Batches at each worker process at once: one being decoded while the last is being logged.
_BATCHES_IN_FLIGHT = 2


class Processor:
    """Runs `MessageProcessor` over the raw log in a thread."""

    def __init__(
        self,
        core: MessageProcessor,
        raw_reader: Consumer,
        readings_wal: Producer,
        deadletters: DeadLetterStore,
        *,
        batch_records: int = 2000,
        clock: Callable[[], int] = time.time_ns,
        worker_process: bool = True,
        workers: int = 1,
        log_level: str = "info",
        log_format: LogFormat = "auto",
    ) -> None:
        self._core = core
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._workers = (
            [WorkerProcess(core, log_level, log_format) for _ in range(workers)] if worker_process else []
        )
        self._reader = raw_reader
        self._out = readings_wal
        self._deadletters = deadletters
        self._letters = DeadLetterWriter(deadletters, raw_reader.commit)
        self._batch = batch_records
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="processor", daemon=True)
        self.blocked_on_full_log = False

    def start(self) -> None:
        for worker in self._workers:
            worker.start()
        self._letters.start()
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._letters.stop(timeout)
        for worker in self._workers:
            worker.stop(timeout=1.0)

    def drain_once(self, timeout: float = 0.2) -> int:
        """Process one batch; returns the number of messages processed (for tests and the loop)."""
        batch = self._reader.read(self._batch, timeout=timeout)
        if not batch:
            return 0
        now_ns = self._clock()
        if self._workers:
            self._workers[0].submit(batch, now_ns)
            results = self._workers[0].collect()
        else:
            results = process_batch(self._core, batch, now_ns)
        self._apply(batch, results)
        if not self._thread.is_alive():  # called directly (tests, tools): done means committed
            self._letters.flush()
        return len(batch)

    def _pipeline(self) -> None:
        """Keep two batches at each worker, so they decode the next while this thread logs the last.

        Batches go to the workers in turn and are logged in the order they were read: each
        worker answers its own batches in order, so the oldest batch's answer is its worker's next.
        """
        workers = self._workers
        in_flight: deque[tuple[list[tuple[int, bytes]], WorkerProcess]] = deque()
        turn = 0
        while not self._stop.is_set():
            if len(in_flight) < _BATCHES_IN_FLIGHT * len(workers):
                batch = self._reader.read(self._batch, timeout=0.0 if in_flight else 0.2)
                if batch:
                    worker = workers[turn % len(workers)]
                    turn += 1
                    worker.submit(batch, self._clock())
                    in_flight.append((batch, worker))
                    continue
            if in_flight:
                batch, worker = in_flight.popleft()
                self._apply(batch, worker.collect())

    def _apply(self, batch: list[tuple[int, bytes]], results: list[Processed]) -> None:
        """Append the batch's readings records, store its dead letters, commit its offset."""
        progress = _Progress()
        for (offset, _), (encoded, accepted, letters, outcome) in zip(batch, results, strict=True):
            if encoded is not None:
                try:
                    self._out.append(encoded)
                except WalFullError:
                    # What this batch appended so far sits in the log's buffer, counted against
                    # its quota but invisible to the sinks until synced: make it durable and
                    # commit up to here, or the sinks could never free the space we wait for.
                    self._checkpoint(progress, offset)
                    self._append_when_room(encoded)
            progress.add(accepted, letters, outcome)
        self._checkpoint(progress, batch[-1][0] + 1)

    def _checkpoint(self, progress: _Progress, next_offset: int) -> None:
        """Make the readings so far durable and visible; the raw log is committed up to
        `next_offset` once the dead letters are stored too (`DeadLetterWriter`)."""
        self._out.sync()
        if not progress.messages:
            return
        self._letters.submit(progress.letters, next_offset)
        telemetry.READINGS_ACCEPTED.inc(progress.accepted)
        for outcome, count in progress.outcomes.items():
            telemetry.MESSAGES_PROCESSED.labels(outcome).inc(count)
        for reason, count in Counter(str(dead.reason) for dead in progress.letters).items():
            telemetry.READINGS_REJECTED.labels(reason).inc(count)
        progress.clear()

    def _append_when_room(self, record: bytes) -> None:
        # A full readings log means a sink is far behind: wait for room, never drop.
        log.error("readings_log_full", usage_bytes=self._out.usage_bytes())
        self.blocked_on_full_log = True
        while True:
            if self._stop.wait(0.2):
                raise WalFullError("stopped while the readings log was full")
            try:
                self._out.append(record)
            except WalFullError:
                continue
            break
        self.blocked_on_full_log = False
        log.info("readings_log_has_room", usage_bytes=self._out.usage_bytes())

    def _run(self) -> None:
        failed_at: int | None = None
        while not self._stop.is_set():
            try:
                if failed_at is not None and failed_at == self._reader.committed and self._workers:
                    # The same batch failed twice: find the message that kills the worker.
                    self._isolate(self._batch)
                    failed_at = None
                elif self._workers:
                    self._pipeline()
                else:
                    self.drain_once()
            except WalFullError:
                return  # stopping while the log was full; the offset was not committed
            except Exception:
                # Per-message errors never get here (`process_batch` contains them): this is a
                # lost worker or a fault of our own. Retry once; a second failure at the same
                # offset isolates the batch message by message.
                log.exception("processor_failed")
                for worker in self._workers:
                    worker.stop(timeout=0)  # drops what is in flight; restarted on demand
                self._letters.flush(5.0)  # so that `committed` says where the failure is
                failed_at = self._reader.committed
                self._reader.seek(failed_at)
                self._stop.wait(1.0)

    def _isolate(self, count: int) -> None:
        """Process up to `count` messages one at a time; one that kills its worker is dead-lettered."""
        worker = self._workers[0]
        done = 0
        while done < count and not self._stop.is_set():
            batch = self._reader.read(1, timeout=0.0)
            if not batch:
                return
            offset, record = batch[0]
            try:
                worker.submit(batch, self._clock())
                results = worker.collect()
            except RuntimeError as exc:
                message = readable(record)
                detail = internal_errors.report("worker", exc, topic=message.topic[:200], offset=offset)
                letter = internal_letter(
                    message, f"the decode worker died on this message ({detail})", offset
                )
                results = [(None, 0, [letter], "rejected")]
            self._apply(batch, results)
            done += 1


@dataclass(slots=True)
class _Progress:
    """What a batch has produced since its last checkpoint."""

    messages: int = 0
    accepted: int = 0
    letters: list[DeadLetter] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, accepted: int, letters: list[DeadLetter], outcome: str) -> None:
        self.messages += 1
        self.accepted += accepted
        self.letters.extend(letters)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def clear(self) -> None:
        self.messages = self.accepted = 0
        self.letters = []
        self.outcomes = {}
