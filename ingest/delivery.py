"""The delivery loop: one thread per sink, reading the readings log from the sink's own offset.

It gathers readings into batches (by count, by age, and as soon as the log goes quiet), writes
them, and commits the offset only after the sink accepted the batch, so a crash or an outage
replays, never skips. Failures follow the sink's verdict: retryable ones back off exponentially
with full jitter (honouring Retry-After) for as long as it takes, while the backlog waits in the
log; past the retry budget the sink is reported down. 413 halves the batch. A permanent refusal
(400/422) is narrowed down by bisection to the readings the server refuses, which go to the
dead-letter store; the rest are written.

Sinks that take line protocol (`LineProtocolSink`) are handed the lines the processor rendered
into each record (`ingest.records`): this loop runs in the daemon's main process, where every
µs per message is taken from the MQTT receive path, so it does not decode records it need not.
Only a refused batch is decoded, to narrow the refusal down to readings.

A runner can be told to yield to the ingest path (`yield_to`): while that says the daemon is
busy taking in a burst, the runner pauses after each batch for `YIELD_FACTOR` times as long as
the batch took to write (so it keeps about 5 % of the time), and never longer than
`yield_max_s`, so it always makes progress. The alert engine runs this way: it shares the main
process with the receive path and costs more CPU per reading than anything else there, so
during a burst it falls behind in the log (visible as its pending count) and catches up after.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import orjson
import structlog

from ingest import internal_errors, telemetry
from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.errors import RejectReason, SinkError, SinkReason
from ingest.model import Reading
from ingest.records import decode_readings, line_protocol, readings_count
from ingest.sinks import LineProtocolSink, Sink
from ingest.sinks.base import SinkConfigBase
from ingest.wal import Consumer

log = structlog.get_logger(__name__)

# A runner told to yield pauses this many times as long as its last write took (~5 % duty)...
YIELD_FACTOR: Final = 19.0
# ...and never longer than this, so that it still progresses.
YIELD_MAX_S: Final = 5.0
_YIELD_POLL_S: Final = 0.05
# While backing off from an unreachable database, probe it (`Sink.check`) this often.
PROBE_INTERVAL_S: Final = 0.5
# Failures that mean the database did not answer, so that its answering a probe again is news.
UNREACHABLE_REASONS: Final = frozenset(
    {SinkReason.CONNECTION_FAILED, SinkReason.TIMEOUT, SinkReason.NETWORK, SinkReason.UNAVAILABLE}
)
# The dead-letter reason of a reading a sink refused, by the refusal's reason: a reading that made
# the sink raise (no verdict) is an internal error; any other refusal is the sink's.
_DEAD_LETTER_REASONS: Final[Mapping[SinkReason, RejectReason]] = {
    SinkReason.INTERNAL_ERROR: RejectReason.INTERNAL_ERROR
}


@dataclass(frozen=True, slots=True)
class _Lines:
    """A batch as the processor rendered it: each record's readings in line protocol."""

    records: list[bytes]
    lines: list[bytes]

    def __len__(self) -> int:
        return sum(readings_count(record) for record in self.records)

    def halves(self) -> list[_Batch]:
        if len(self.records) == 1:
            return _halves(self.readings())
        middle = len(self.records) // 2
        return [
            _Lines(self.records[:middle], self.lines[:middle]),
            _Lines(self.records[middle:], self.lines[middle:]),
        ]

    def readings(self) -> list[Reading]:
        return _decoded(self.records)


def _decoded(records: list[bytes]) -> list[Reading]:
    return [reading for record in records for reading in decode_readings(record)]


_Batch = _Lines | Sequence[Reading]


class SinkRunner:
    def __init__(
        self,
        sink: Sink,
        config: SinkConfigBase,
        reader: Consumer,
        deadletters: DeadLetterStore,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        yield_to: Callable[[], bool] | None = None,
        yield_max_s: float = YIELD_MAX_S,
    ) -> None:
        self.sink = sink
        self.config = config
        self._reader = reader
        self._deadletters = deadletters
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._yield_to = yield_to
        self._yield_max_s = yield_max_s
        self._lines_sink = sink if isinstance(sink, LineProtocolSink) else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sink-{config.name}", daemon=True)
        self._failing_since: float | None = None
        self._last_write_s = 0.0
        self.down = False
        self._label = config.name
        telemetry.SINK_UP.labels(self._label).set(1)

    @property
    def reader(self) -> Consumer:
        return self._reader

    @property
    def failing(self) -> bool:
        """The last write failed and no write has succeeded since."""
        return self._failing_since is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Finish the batch in hand if the sink answers within `timeout`, then stop."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._wait_while_ingest_busy()
                self.deliver_once(wait=0.2)
            except Exception:
                log.exception("sink_loop_failed", sink=self._label)
                self._reader.seek(self._reader.committed)
                self._stop.wait(1.0)

    def _wait_while_ingest_busy(self) -> None:
        if self._yield_to is None or not self._last_write_s:
            return
        pause = min(self._last_write_s * YIELD_FACTOR, self._yield_max_s)
        self._last_write_s = 0.0
        deadline = self._monotonic() + pause
        while self._yield_to() and self._monotonic() < deadline:
            if self._stop.wait(min(_YIELD_POLL_S, max(0.0, deadline - self._monotonic()))):
                return

    def deliver_once(self, wait: float = 0.0) -> int:
        """Gather one batch and deliver it; returns the readings delivered or dead-lettered."""
        records, count, next_offset = self._gather(wait)
        if next_offset is None:
            return 0
        started = self._monotonic()
        written = not records or self._write_all(self._batch(records))
        self._last_write_s = self._monotonic() - started
        if not written:
            # Stopping mid-outage: leave the offset where it is, the batch is replayed on restart.
            self._reader.seek(self._reader.committed)
            return 0
        self._reader.commit(next_offset)
        return count

    def _batch(self, records: list[bytes]) -> _Batch:
        if self._lines_sink is not None:
            lines = [line_protocol(record) or b"" for record in records]
            if all(lines):
                return _Lines(records, lines)
        return _decoded(records)

    def _gather(self, wait: float) -> tuple[list[bytes], int, int | None]:
        limit = self.config.batch_size
        max_age = self.config.flush_interval.total_seconds()
        idle = self.config.flush_idle.total_seconds()
        records: list[bytes] = []
        count = 0
        next_offset: int | None = None
        deadline: float | None = None
        while count < limit:
            timeout = wait if deadline is None else max(0.0, min(idle, deadline - self._monotonic()))
            # Records hold one message's readings; ask for few enough to stay near the limit.
            read = self._reader.read(max(1, (limit - count) // 8), timeout=timeout)
            if not read:
                break
            for offset, record in read:
                records.append(record)
                count += readings_count(record)
                next_offset = offset + 1
            if deadline is None:
                deadline = self._monotonic() + max_age
            if self._monotonic() >= deadline or self._stop.is_set():
                break
        return records, count, next_offset

    def _write_all(self, batch: _Batch, *, isolating: bool = False) -> bool:
        """Deliver the batch (splitting and dead-lettering as told); False if stopped first."""
        attempt = 0
        size = len(batch)
        while True:
            started = time.perf_counter()
            try:
                if isinstance(batch, _Lines):
                    assert self._lines_sink is not None
                    self._lines_sink.write_lines(b"".join(batch.lines))
                else:
                    self.sink.write(batch)
            except SinkError as error:
                exc = error
            except Exception as unexpected:
                # Not a verdict the sink gave: a bug, or an input it cannot handle. Once, retry
                # the whole batch (the fault may pass); then narrow it down to the readings that
                # raise and dead-letter them, rather than retry them forever.
                detail = internal_errors.report(f"sink_{self._label}", unexpected)
                exc = SinkError(SinkReason.INTERNAL_ERROR, detail, retryable=not isolating and attempt == 0)
            else:
                telemetry.SINK_BATCH_SECONDS.labels(self._label).observe(time.perf_counter() - started)
                telemetry.SINK_WRITTEN.labels(self._label).inc(size)
                self._recovered()
                return True
            telemetry.SINK_FAILURES.labels(self._label, exc.reason).inc()
            if exc.split and size > 1:
                return all(self._write_all(half, isolating=isolating) for half in _halves(batch))
            if not exc.retryable:
                if isinstance(batch, _Lines):
                    return self._isolate_refused(batch.readings(), exc)
                return self._isolate_refused(batch, exc)
            if not self._back_off(attempt, exc):
                return False
            attempt += 1

    def _isolate_refused(self, batch: Sequence[Reading], exc: SinkError) -> bool:
        if len(batch) == 1:
            self._dead_letter(batch[0], exc)
            return True
        return all(self._write_all(half, isolating=True) for half in _halves(batch))

    def _dead_letter(self, reading: Reading, exc: SinkError) -> None:
        payload = orjson.dumps(
            {
                "station_id": reading.station_id,
                "parameter": reading.parameter,
                "value": reading.value,
                "unit": reading.unit,
                "time_ns": reading.time_ns,
                "flag": reading.flag.value,
                "tags": reading.tags,
            }
        )
        self._deadletters.add_many(
            [
                DeadLetter(
                    received_ns=time.time_ns(),
                    topic=f"sink/{self._label}",
                    payload=payload,
                    reason=_DEAD_LETTER_REASONS.get(exc.reason, RejectReason.SINK_REJECTED),
                    detail=f"{exc.reason}: {exc.detail}"[:2000],
                    format="reading",
                    station_id=reading.station_id,
                    parameter=reading.parameter,
                )
            ]
        )
        telemetry.SINK_DEAD_LETTERED.labels(self._label).inc()
        log.warning(
            "sink_refused_reading",
            sink=self._label,
            station_id=reading.station_id,
            parameter=reading.parameter,
            reason=exc.reason,
        )

    def _back_off(self, attempt: int, exc: SinkError) -> bool:
        now = self._monotonic()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("sink_write_failed", sink=self._label, reason=exc.reason, detail=exc.detail)
        budget = self.config.retry_budget.total_seconds()
        if not self.down and now - self._failing_since >= budget:
            self.down = True
            telemetry.SINK_UP.labels(self._label).set(0)
            log.error(
                "sink_down",
                sink=self._label,
                reason=exc.reason,
                detail=exc.detail,
                failing_for_s=round(now - self._failing_since, 1),
                backlog=self._reader.lag(),
            )
        cap = self.config.retry_max_delay.total_seconds()
        base = self.config.retry_initial_delay.total_seconds()
        delay = self._rng.uniform(0, min(cap, base * 2 ** min(attempt, 30)))
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, cap))
            return not self._stop.wait(delay)
        return self._wait_or_probe(delay, unreachable=exc.reason in UNREACHABLE_REASONS)

    def _wait_or_probe(self, delay: float, *, unreachable: bool) -> bool:
        """Wait `delay` seconds, probing the sink meanwhile; False if stopped.

        A database that was unreachable and answers a probe again ends the wait at once, so
        writing resumes within about `PROBE_INTERVAL_S` of its return rather than after the rest
        of a backoff of up to `retry_max_delay`. A sink that answers probes but fails writes (a
        500) waits out its backoff: probing then says nothing about the next write.
        """
        deadline = time.monotonic() + delay
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if self._stop.wait(min(remaining, PROBE_INTERVAL_S)):
                return False
            if time.monotonic() >= deadline:
                return True
            try:
                self.sink.check()
            except Exception:
                unreachable = True
                continue
            if unreachable:
                log.info("sink_answers_again", sink=self._label)
                return True
        return False

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.info(
                "sink_recovered",
                sink=self._label,
                failed_for_s=round(self._monotonic() - self._failing_since, 1),
            )
        self._failing_since = None
        if self.down:
            self.down = False
            telemetry.SINK_UP.labels(self._label).set(1)


def _halves(batch: _Batch) -> list[_Batch]:
    if isinstance(batch, _Lines):
        return batch.halves()
    middle = len(batch) // 2
    return [batch[:middle], batch[middle:]]
