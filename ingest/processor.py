"""The processor: raw log -> decode -> validate -> readings log + dead-letter store.

It consumes the raw write-ahead log with its own durable offset. For each message it picks the
subscription whose topic template matches, decodes with that subscription's format, validates
every raw reading, appends the good readings of the message as one record to the readings log and
stores every rejection in the dead-letter store. Only when both are durable does it commit its
offset: the readings log is synced at once, so good readings never wait on the dead-letter store;
`DeadLetterWriter` stores the letters on a thread of its own and then commits. A crash therefore
re-processes a batch: the readings log may then hold a message twice (sinks overwrite, the alert
engine skips what it has evaluated) and the dead-letter store ignores the repeat (it counts each
raw offset once). When the readings log reaches its quota mid-batch, the part
already done is synced and committed before waiting for room: appended records stay invisible
to the sinks until synced, so waiting with them unsynced would wait forever.

Decoding and validating (`MessageProcessor`, pure) run in worker processes by default
(`WorkerProcess`, `validation.workers` of them, batches in turn, two deep each), while this
thread appends, syncs and commits: in one process the GIL would make them and the MQTT receive
path take turns. With two workers a burst's decoding spreads over two cores where there are
two, instead of one worker finishing alone after the receive path is done.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import queue
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import NoReturn

import structlog

from ingest import internal_errors, telemetry
from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.decoders import Decoder
from ingest.errors import RejectedPayload, RejectReason, WalFullError
from ingest.letter_writer import DeadLetterWriter
from ingest.model import ItemRejection, Message, RawReading, Reading
from ingest.records import decode_message, encode_readings
from ingest.telemetry import LogFormat
from ingest.topics import TopicTemplate
from ingest.validate import Validator
from ingest.wal import WalReader, WriteAheadLog

log = structlog.get_logger(__name__)

# Batches at each worker process at once: one being decoded while the last is being logged.
_BATCHES_IN_FLIGHT = 2
# Topic -> route lookups are cached; bounded so a flood of distinct topics cannot grow memory.
_ROUTE_CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Route:
    template: TopicTemplate
    format: str
    decoder: Decoder


@dataclass(slots=True)
class Outcome:
    readings: list[Reading]
    rejections: list[DeadLetter]


class MessageProcessor:
    """Pure-ish core: one message in, readings and dead letters out (no I/O)."""

    def __init__(self, routes: Sequence[Route], validator: Validator, max_payload_bytes: int) -> None:
        self._routes = list(routes)
        self._validator = validator
        self._max_payload = max_payload_bytes
        self._route_cache: dict[str, tuple[Route, dict[str, str]] | None] = {}

    def route(self, topic: str) -> tuple[Route, dict[str, str]] | None:
        cached = self._route_cache.get(topic, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        found: tuple[Route, dict[str, str]] | None = None
        for route in self._routes:
            tags = route.template.match(topic)
            if tags is not None:
                found = (route, tags)
                break
        if len(self._route_cache) >= _ROUTE_CACHE_LIMIT:
            self._route_cache.clear()
        self._route_cache[topic] = found
        return found

    def process(self, message: Message, now_ns: int, offset: int | None = None) -> Outcome:
        def letter(
            reason: RejectReason,
            detail: str,
            fmt: str | None,
            station: str | None = None,
            parameter: str | None = None,
        ) -> DeadLetter:
            return DeadLetter(
                received_ns=message.received_ns,
                topic=message.topic,
                payload=message.payload[: self._max_payload],
                reason=reason,
                detail=detail,
                format=fmt,
                station_id=station,
                parameter=parameter,
                source_offset=offset,
            )

        routed = self.route(message.topic)
        if routed is None:
            return Outcome(
                [], [letter(RejectReason.BAD_TOPIC, "topic matches no subscription template", None)]
            )
        route, topic_tags = routed
        refused = route.template.disallowed(topic_tags)
        if refused is not None:
            return Outcome([], [letter(RejectReason.BAD_TOPIC, refused, route.format)])
        if len(message.payload) > self._max_payload:
            detail = f"{len(message.payload)} bytes exceed max_payload_bytes={self._max_payload}"
            return Outcome([], [letter(RejectReason.TOO_LARGE, detail, route.format)])
        try:
            decoded = route.decoder.decode(message.topic, message.payload)
        except RejectedPayload as exc:
            return Outcome([], [letter(exc.reason, exc.detail, route.format)])
        except Exception as exc:
            detail = internal_errors.report("decode", exc, topic=message.topic[:200], offset=offset)
            return Outcome([], [letter(RejectReason.INTERNAL_ERROR, detail, route.format)])
        try:
            readings, invalid = self._validator.validate_many(decoded.readings, topic_tags, now_ns)
        except Exception:
            readings, invalid = self._validate_each(decoded.readings, topic_tags, now_ns, offset)
        rejections = [
            letter(r.reason, r.detail, route.format, r.station_id, r.parameter)
            for r in (*decoded.rejections, *invalid)
        ]
        return Outcome(readings, rejections)

    def _validate_each(
        self, raws: Sequence[RawReading], topic_tags: dict[str, str], now_ns: int, offset: int | None
    ) -> tuple[list[Reading], list[ItemRejection]]:
        """Validate a message's readings one by one, so one that raises is the only one lost."""
        readings: list[Reading] = []
        rejections: list[ItemRejection] = []
        for raw in raws:
            try:
                checked = self._validator.validate(raw, topic_tags, now_ns)
            except Exception as exc:
                detail = internal_errors.report(
                    "validate", exc, parameter=str(raw.parameter)[:40], offset=offset
                )
                checked = ItemRejection(RejectReason.INTERNAL_ERROR, detail, None, str(raw.parameter)[:32])
            (readings if isinstance(checked, Reading) else rejections).append(checked)  # type: ignore[arg-type]
        return readings, rejections


class Processor:
    """Runs `MessageProcessor` over the raw log in a thread."""

    def __init__(
        self,
        core: MessageProcessor,
        raw_reader: WalReader,
        readings_wal: WriteAheadLog,
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
                message = _readable(record)
                detail = internal_errors.report("worker", exc, topic=message.topic[:200], offset=offset)
                letter = _internal_letter(
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


def _outcome(outcome: Outcome) -> str:
    if not outcome.rejections:
        return "accepted"
    return "partial" if outcome.readings else "rejected"


# One message as processed, small enough to cross a pipe: (its readings record for the readings
# log, or None; how many readings it holds; its dead letters; its outcome label).
Processed = tuple[bytes | None, int, list[DeadLetter], str]


def process_batch(core: MessageProcessor, batch: Sequence[tuple[int, bytes]], now_ns: int) -> list[Processed]:
    """Decode, validate and encode a batch of raw-log records (in whichever process runs it).

    Whatever one message raises stays with that message: it becomes its dead letter.
    """
    out: list[Processed] = []
    for offset, record in batch:
        try:
            message = decode_message(record)
        except Exception as exc:  # a raw record we cannot even read back
            detail = internal_errors.report("raw_record", exc, offset=offset)
            out.append((None, 0, [_internal_letter(_readable(record), detail, offset)], "rejected"))
            continue
        try:
            outcome = core.process(message, now_ns, offset)
        except Exception as exc:
            detail = internal_errors.report("process", exc, topic=message.topic[:200], offset=offset)
            outcome = Outcome([], [_internal_letter(message, detail, offset)])
        encoded = _encoded(outcome, message, offset) if outcome.readings else None
        out.append((encoded, len(outcome.readings), outcome.rejections, _outcome(outcome)))
    return out


def _encoded(outcome: Outcome, message: Message, offset: int) -> bytes | None:
    """The readings record of the outcome's readings; those that cannot be encoded become letters."""
    try:
        return encode_readings(outcome.readings)
    except Exception as exc:
        internal_errors.report("encode", exc, topic=message.topic[:200], offset=offset)
    good: list[Reading] = []
    for reading in outcome.readings:
        try:
            encode_readings([reading])
        except Exception as exc:
            detail = internal_errors.describe(exc)
            dead = _internal_letter(message, detail, offset, reading.station_id, reading.parameter)
            outcome.rejections.append(dead)
        else:
            good.append(reading)
    outcome.readings = good
    return encode_readings(good) if good else None


def _readable(record: bytes) -> Message:
    """The raw record as a message, or the whole record as the payload when it cannot be parsed."""
    try:
        return decode_message(record)
    except Exception:
        return Message(topic="", payload=record, received_ns=0)


def _internal_letter(
    message: Message, detail: str, offset: int, station: str | None = None, parameter: str | None = None
) -> DeadLetter:
    return DeadLetter(
        received_ns=message.received_ns,
        topic=message.topic,
        payload=message.payload,
        reason=RejectReason.INTERNAL_ERROR,
        detail=detail,
        station_id=station,
        parameter=parameter,
        source_offset=offset,
    )


class WorkerProcess:
    """Runs `process_batch` in a child process, so decoding and validation get a core of their own.

    The receive path holds the GIL for most of a core (DESIGN.md), and decoding and validating a
    message costs as much again: in one process the two halve each other's rate. The child gets
    the pickled core at start and then, per batch, raw records in and encoded readings records
    out over a pipe (a few ms per 2 000 messages). The thread that waits on the pipe holds no
    GIL meanwhile. The child ignores SIGINT and SIGTERM (a terminal or a service manager sends
    them to the whole group): it ends when the daemon closes the pipe, or dies with it.
    A lost child is restarted with the next batch; the failed batch is retried.
    """

    def __init__(
        self, core: MessageProcessor, log_level: str = "info", log_format: LogFormat = "auto"
    ) -> None:
        self._logging = (log_level, log_format)
        self._core = pickle.dumps(core)
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def start(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child, self._core, *self._logging),
            name="ecowatch-processor",
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        log.info("processor_worker_started", pid=process.pid)

    def submit(self, batch: Sequence[tuple[int, bytes]], now_ns: int) -> None:
        """Hand a batch to the child (starting it if needed); `collect` returns results in order."""
        if self._conn is None or self._process is None or not self._process.is_alive():
            self.stop(timeout=0)
            self.start()
        assert self._conn is not None
        try:
            self._conn.send((now_ns, list(batch)))
        except OSError as exc:
            self._lost(exc)

    def collect(self) -> list[Processed]:
        """The results of the oldest batch submitted and not yet collected."""
        if self._conn is None:
            raise RuntimeError("no batch in flight: the worker was restarted")
        try:
            results: list[Processed] = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._lost(exc)
        return results

    def _lost(self, exc: BaseException) -> NoReturn:
        exitcode = self._process.exitcode if self._process is not None else None
        log.error("processor_worker_lost", exitcode=exitcode, error=str(exc) or type(exc).__name__)
        self.stop(timeout=0)
        raise RuntimeError("the processor worker process was lost") from exc

    def stop(self, timeout: float) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            conn.close()  # the child sees EOF and exits
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(1.0)


def _worker_main(conn: Connection, core_pickle: bytes, log_level: str, log_format: LogFormat) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    core: MessageProcessor = pickle.loads(core_pickle)  # noqa: S301 - our own bytes, from our parent
    # The registry, catalogue and caches live as long as the process: keep them out of the
    # collector's full passes, which otherwise walk them again and again as messages go by.
    gc.freeze()
    # A spawned child starts with structlog's defaults, whose console tracebacks render every
    # frame's locals (a 60 KB payload, a list nested 1 000 deep) for minutes: log as the daemon does.
    telemetry.configure_logging(log_level, log_format)
    # Requests are read by a thread of their own: with two batches in flight the parent may be
    # writing the next while we write the last one's results, and neither pipe direction may
    # wait for the other to be read.
    requests: queue.SimpleQueue[tuple[int, list[tuple[int, bytes]]] | None] = queue.SimpleQueue()

    def receive() -> None:
        while True:
            try:
                requests.put(conn.recv())
            except (EOFError, OSError):
                requests.put(None)
                return

    threading.Thread(target=receive, name="requests", daemon=True).start()
    while (request := requests.get()) is not None:
        now_ns, batch = request
        try:
            conn.send(process_batch(core, batch, now_ns))
        except OSError:
            return  # the daemon is gone
