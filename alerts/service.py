"""The alert service: the engine as the daemon sees it — a sink of the readings log, a scheduler,
and the operator API.

The daemon gives it the `alerts` config section, the registry and the path of the alert
database (`data_dir/alerts.db`), then feeds it like a sink: a delivery loop reads the readings
log from the service's own durable offset and calls `write(readings)` in log order, committing
the offset after `write` returns. A database failure raises `SinkError(retryable=True)`, so the
loop retries the same batch; a batch already evaluated (a crash between our commit and the
loop's) is recognised reading by reading and notifies nothing twice. `start()` starts the
scheduler (`alerts.scheduler`), `routes()` gives the HTTP handlers (`alerts.api`), `close()`
stops both and closes the database. `clock` is injectable: tests drive `write` and `tick` with a
fake one and never start the scheduler.

Example:
    alerts:
      scheduler: {tick_interval: PT10S, daily_assessment_at: "08:00", timezone: Asia/Shanghai}
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import structlog

from alerts.api import AlertsAPI
from alerts.assessment import assess_day, day_bounds
from alerts.config import AlertsConfig
from alerts.engine import AlertEngine
from alerts.scheduler import AlertScheduler
from alerts.store import AlertStore
from config.registry import Registry
from config.times import ns, to_ns
from ingest.errors import SinkError
from ingest.model import Reading
from ingest.routes import Handler

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class AlertService:
    name: ClassVar[str] = "alerts"

    def __init__(
        self,
        config: AlertsConfig,
        registry: Registry,
        db_path: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self._clock = clock
        self.store = AlertStore(db_path)
        try:
            self.engine = AlertEngine(config, registry, self.store, started=clock())
        except BaseException:
            self.store.close()
            raise
        self.api = AlertsAPI(self.engine, clock)
        self.scheduler = AlertScheduler(
            config.scheduler,
            tick=lambda: self.tick(self._clock()),
            assess=lambda: self.assess(self._clock()),
            housekeep=lambda: self.housekeep(self._clock()),
        )

    # --- the sink side ---------------------------------------------------------------------------
    def write(self, readings: Sequence[Reading]) -> None:
        """Evaluate a batch from the readings log; raises SinkError(retryable) on database trouble."""
        with _retryable("write"):
            self.engine.ingest(readings, self._clock())

    def check(self) -> None:
        with _retryable("check"), self.engine.lock:
            self.store.check()

    def close(self) -> None:
        self.stop()
        with self.engine.lock:
            self.store.close()

    # --- the time-driven side --------------------------------------------------------------------
    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()

    def tick(self, now: datetime) -> None:
        self.engine.tick(now)

    def assess(self, now: datetime) -> list[str]:
        """Assess each due local day not yet assessed (up to `catch_up_days` back); the days done.

        Day D is due once D + 1 at `daily_assessment_at` has passed. Days with no samples at
        all (the daemon was down, or before it first ran) are left unassessed.
        """
        settings = self.config.scheduler
        zone = ZoneInfo(settings.timezone)
        local = now.astimezone(zone)
        newest = local.date() - timedelta(days=1 if local.time() >= settings.daily_assessment_at else 2)
        candidates = [newest - timedelta(days=back) for back in range(settings.catch_up_days, -1, -1)]
        now_ns = to_ns(now)
        engine = self.engine
        done: list[str] = []
        with engine.transaction():
            assessed = engine.store.assessed_days()
            for day in candidates:
                if day.isoformat() in assessed:
                    continue
                start_ns, end_ns = day_bounds(day, zone)
                samples = list(engine.store.samples_between(start_ns, end_ns))
                if not samples:
                    continue
                summary = assess_day(engine.standard, engine.registry, samples, day)
                engine.store.save_assessment(day.isoformat(), now_ns, summary)
                engine.store.add_note(
                    f"assessment:{day.isoformat()}",
                    "daily_assessment",
                    end_ns,
                    now_ns,
                    {"rates": summary["rates"]},
                )
                done.append(day.isoformat())
        if done:
            log.info("daily_assessment_done", days=done)
        return done

    def housekeep(self, now: datetime) -> dict[str, int]:
        """Prune history, assessments and silences past the retention, and samples past the windows."""
        now_ns = to_ns(now)
        engine = self.engine
        with engine.transaction():
            samples_before = {
                sid: w.watermark_ns - engine.stored_ns
                for sid, w in engine.windows.items()
                if w.watermark_ns is not None
            }
            cutoff = now_ns - ns(self.config.history_retention)
            counts = engine.store.prune(history_before_ns=cutoff, samples_before_ns=samples_before)
            engine.silences = [s for s in engine.silences if s.ends_ns >= cutoff]
        log.info("alert_housekeeping_done", **counts)
        return counts

    # --- the operator side -----------------------------------------------------------------------
    def routes(self) -> dict[tuple[str, str], Handler]:
        return self.api.routes()

    def stats(self) -> dict[str, Any]:
        with self.engine.lock:
            state = self.engine.state_json()
        return {
            **state,
            "scheduler": {k: v.isoformat() if v else None for k, v in self.scheduler.next_runs().items()},
        }


@contextmanager
def _retryable(operation: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        # The readings wait in the log; the delivery loop retries the batch with backoff.
        raise SinkError("alert_db", f"{operation}: {exc}", retryable=True) from exc
