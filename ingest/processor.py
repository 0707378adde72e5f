"""The processor: raw log -> decode -> validate -> readings log + dead-letter store.

It consumes the raw write-ahead log with its own durable offset. For each message it picks the
subscription whose topic template matches, decodes with that subscription's format, validates
every raw reading, appends the good readings of the message as one record to the readings log and
stores every rejection in the dead-letter store. Only when both are durable does it commit its
offset, so a crash re-processes a batch: the readings log may then hold a message twice (sinks
overwrite, the alert engine skips what it has evaluated) and the dead-letter store ignores the
repeat (unique per raw offset).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from ingest import telemetry
from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.decoders import Decoder
from ingest.errors import RejectedPayload, RejectReason, WalFullError
from ingest.model import ItemRejection, Message, Reading
from ingest.records import decode_message, encode_readings
from ingest.topics import TopicTemplate
from ingest.validate import Validator
from ingest.wal import WalReader, WriteAheadLog

log = structlog.get_logger(__name__)

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
        if len(message.payload) > self._max_payload:
            detail = f"{len(message.payload)} bytes exceed max_payload_bytes={self._max_payload}"
            return Outcome([], [letter(RejectReason.TOO_LARGE, detail, route.format)])
        try:
            decoded = route.decoder.decode(message.topic, message.payload)
        except RejectedPayload as exc:
            return Outcome([], [letter(exc.reason, exc.detail, route.format)])
        readings: list[Reading] = []
        rejections = [
            letter(r.reason, r.detail, route.format, r.station_id, r.parameter) for r in decoded.rejections
        ]
        for raw in decoded.readings:
            result = self._validator.validate(raw, topic_tags, now_ns)
            if isinstance(result, ItemRejection):
                rejections.append(
                    letter(result.reason, result.detail, route.format, result.station_id, result.parameter)
                )
            else:
                readings.append(result)
        return Outcome(readings, rejections)


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
    ) -> None:
        self._core = core
        self._reader = raw_reader
        self._out = readings_wal
        self._deadletters = deadletters
        self._batch = batch_records
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="processor", daemon=True)
        self.blocked_on_full_log = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def drain_once(self, timeout: float = 0.2) -> int:
        """Process one batch; returns the number of messages processed (for tests and the loop)."""
        batch = self._reader.read(self._batch, timeout=timeout)
        if not batch:
            return 0
        now_ns = self._clock()
        letters: list[DeadLetter] = []
        accepted = 0
        for offset, record in batch:
            outcome = self._core.process(decode_message(record), now_ns, offset)
            if outcome.readings:
                self._append(encode_readings(outcome.readings))
                accepted += len(outcome.readings)
            letters.extend(outcome.rejections)
            telemetry.MESSAGES_PROCESSED.labels(_outcome(outcome)).inc()
        self._deadletters.add_many(letters)
        self._out.sync()
        self._reader.commit(batch[-1][0] + 1)
        telemetry.READINGS_ACCEPTED.inc(accepted)
        for dead in letters:
            telemetry.READINGS_REJECTED.labels(str(dead.reason)).inc()
            log.debug(
                "reading_rejected", reason=str(dead.reason), topic=dead.topic, station_id=dead.station_id
            )
        telemetry.DEADLETTERS_STORED.inc(len(letters))
        return len(batch)

    def _append(self, record: bytes) -> None:
        # A full readings log means a sink is far behind: wait for room, never drop.
        while True:
            try:
                self._out.append(record)
            except WalFullError:
                if not self.blocked_on_full_log:
                    log.error("readings_log_full", usage_bytes=self._out.usage_bytes())
                self.blocked_on_full_log = True
                if self._stop.wait(0.2):
                    raise
                continue
            if self.blocked_on_full_log:
                log.info("readings_log_has_room")
            self.blocked_on_full_log = False
            return

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain_once()
            except WalFullError:
                return  # stopping while the log was full; the offset was not committed
            except Exception:
                # A bug must not stop the stream silently: log it, back off, retry the same batch.
                log.exception("processor_failed")
                self._reader.seek(self._reader.committed)
                self._stop.wait(1.0)


def _outcome(outcome: Outcome) -> str:
    if not outcome.rejections:
        return "accepted"
    return "partial" if outcome.readings else "rejected"
