"""The delivery loop: one thread per sink, reading the readings log from the sink's own offset.

It gathers readings into batches (by count and age), writes them, and commits the offset only
after the sink accepted the batch, so a crash or an outage replays, never skips. Failures follow
the sink's verdict: retryable ones back off exponentially with full jitter (honouring
Retry-After) for as long as it takes, while the backlog waits in the log; past the retry budget the
sink is reported down. 413 halves the batch. A permanent refusal (400/422) is narrowed down by
bisection to the readings the server refuses, which go to the dead-letter store; the rest are
written.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

import orjson
import structlog

from ingest import telemetry
from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.errors import RejectReason, SinkError
from ingest.model import Reading
from ingest.records import decode_readings
from ingest.sinks import Sink
from ingest.sinks.base import SinkConfigBase
from ingest.wal import WalReader

log = structlog.get_logger(__name__)


class SinkRunner:
    def __init__(
        self,
        sink: Sink,
        config: SinkConfigBase,
        reader: WalReader,
        deadletters: DeadLetterStore,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.config = config
        self._reader = reader
        self._deadletters = deadletters
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sink-{config.name}", daemon=True)
        self._failing_since: float | None = None
        self.down = False
        self._label = config.name
        telemetry.SINK_UP.labels(self._label).set(1)

    @property
    def reader(self) -> WalReader:
        return self._reader

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Finish the batch in hand if the sink answers within `timeout`, then stop."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_once(wait=0.2)
            except Exception:
                log.exception("sink_loop_failed", sink=self._label)
                self._reader.seek(self._reader.committed)
                self._stop.wait(1.0)

    def deliver_once(self, wait: float = 0.0) -> int:
        """Gather one batch and deliver it; returns the readings delivered or dead-lettered."""
        batch, next_offset = self._gather(wait)
        if next_offset is None:
            return 0
        if batch and not self._write_all(batch):
            # Stopping mid-outage: leave the offset where it is, the batch is replayed on restart.
            self._reader.seek(self._reader.committed)
            return 0
        self._reader.commit(next_offset)
        return len(batch)

    def _gather(self, wait: float) -> tuple[list[Reading], int | None]:
        limit = self.config.batch_size
        max_age = self.config.flush_interval.total_seconds()
        batch: list[Reading] = []
        next_offset: int | None = None
        deadline: float | None = None
        while len(batch) < limit:
            timeout = wait if deadline is None else max(0.0, deadline - self._monotonic())
            # Records hold one message's readings; ask for few enough to stay near the limit.
            records = self._reader.read(max(1, (limit - len(batch)) // 8), timeout=timeout)
            if not records:
                break
            for offset, record in records:
                batch.extend(decode_readings(record))
                next_offset = offset + 1
            if deadline is None:
                deadline = self._monotonic() + max_age
            if self._monotonic() >= deadline or self._stop.is_set():
                break
        return batch, next_offset

    def _write_all(self, batch: Sequence[Reading]) -> bool:
        """Deliver the batch (splitting and dead-lettering as told); False if stopped first."""
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                self.sink.write(batch)
            except SinkError as exc:
                telemetry.SINK_FAILURES.labels(self._label, exc.reason).inc()
                if exc.split and len(batch) > 1:
                    middle = len(batch) // 2
                    return self._write_all(batch[:middle]) and self._write_all(batch[middle:])
                if not exc.retryable:
                    return self._isolate_refused(batch, exc)
                if not self._back_off(attempt, exc):
                    return False
                attempt += 1
                continue
            telemetry.SINK_BATCH_SECONDS.labels(self._label).observe(time.perf_counter() - started)
            telemetry.SINK_WRITTEN.labels(self._label).inc(len(batch))
            self._recovered()
            return True

    def _isolate_refused(self, batch: Sequence[Reading], exc: SinkError) -> bool:
        if len(batch) == 1:
            self._dead_letter(batch[0], exc)
            return True
        middle = len(batch) // 2
        return self._write_all(batch[:middle]) and self._write_all(batch[middle:])

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
                    reason=RejectReason.SINK_REJECTED,
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
