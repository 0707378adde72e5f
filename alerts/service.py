"""The alert service: the engine as the daemon sees it — a sink of the readings log, a scheduler,
and the operator API.

The daemon gives it the `alerts` config section, the registry and the path of the alert
database (`data_dir/alerts.db`), then feeds it like a sink: a delivery loop reads the readings
log from the service's own durable offset and calls `write(readings)` in log order, committing
the offset after `write` returns. A database failure raises `SinkError(retryable=True)`, so the
loop retries the same batch; a batch already evaluated (a crash between our commit and the
loop's) is recognised reading by reading and notifies nothing twice. `start()` starts the
scheduler (`alerts.scheduler`), which runs the engine's `tick` and `housekeep` and the daily
assessment (`alerts.assessment.DailyAssessment`) on the service's clock; `routes()` gives the
HTTP handlers (`alerts.api`, the assessment's periods included) and `snapshot()` the alert state
the dashboard shows, in the same shapes; `close()` stops the scheduler and closes the database
and the results reader. The daemon gives the assessment its rules file and a reader of the
readings store (`results`, ingest.app.assessment_source); without one, the daily assessment
reads the engine's samples and periods come from the stored days alone. `clock` is injectable:
tests drive `write` and `tick` with a fake one and never start the scheduler.

Example:
    alerts:
      scheduler: {tick_interval: PT10S, daily_assessment_at: "08:00", timezone: Asia/Shanghai}
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

import structlog

from alerts.api import AlertsAPI, AlertSnapshot
from alerts.assessment import DailyAssessment, PeriodAssessments
from alerts.assessment_method.rules import DEFAULT_RULES_FILE, load_rules
from alerts.assessment_method.source import ResultsSource
from alerts.config import AlertsConfig
from alerts.engine import AlertEngine
from alerts.region_figures import RegionFigure, region_figures
from alerts.rules.regional_period import RegionalPeriodRule
from alerts.scheduler import AlertScheduler
from alerts.store import AlertStore
from config.registry import Registry
from config.standards import default_standard, load_standard
from ingest.errors import SinkError, SinkReason
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
        assessment_rules: Path | None = None,
        results: ResultsSource | None = None,
        keep_days: int = 800,
        keep_samples: bool | None = None,
        watched: Callable[[str], bool] | None = None,
        regions: bool = True,
    ) -> None:
        self.config = config
        self._clock = clock
        self._results = results
        self.store = AlertStore(db_path)
        try:
            # Without a readings store to read, the daily assessment reads the engine's samples.
            standard = load_standard(config.standard) if config.standard else default_standard()
            rules = load_rules(assessment_rules or DEFAULT_RULES_FILE, standard)
            self.engine = AlertEngine(
                config,
                registry,
                self.store,
                started=clock(),
                standard=standard,
                keep_samples=results is None if keep_samples is None else keep_samples,
                not_raised=rules.over_range.not_raised,
                watched=watched,
                regions=regions,
            )
        except BaseException:
            self.store.close()
            raise
        self._db_path, self._registry, self._rules = db_path, registry, rules
        self.periods = PeriodAssessments(db_path, registry, self.engine.standard, rules, source=results)
        self.daily = DailyAssessment(
            self.engine,
            registry,
            config.scheduler,
            rules,
            source=results,
            keep_days=keep_days,
            on_stored=self.periods.stored,
        )
        self.api = AlertsAPI(self.engine, clock, assessments=self.periods)
        engine = self.engine
        self.scheduler = AlertScheduler(
            config.scheduler,
            tick=lambda: engine.tick(self._clock()),
            assess=lambda: self.assess(self._clock()),
            housekeep=lambda: engine.housekeep(self._clock()),
        )

    # --- the sink side ---------------------------------------------------------------------------
    def write(self, readings: Sequence[Reading]) -> None:
        """Evaluate a batch from the readings log; raises SinkError(retryable) on database trouble."""
        with _retryable("write"):
            self.engine.ingest(readings, self._clock())

    def check(self) -> None:
        with _retryable("check"):
            self.engine.check()

    def close(self) -> None:
        self.stop()
        with self.engine.lock:
            self.store.close()
        if self._results is not None:
            self._results.close()

    # --- the time-driven side --------------------------------------------------------------------
    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()

    def tick(self, now: datetime) -> None:
        self.engine.tick(now)

    def assess(self, now: datetime) -> list[str]:
        """The daily assessment of each due day not yet assessed (`DailyAssessment.run`), then the
        regional rules on each stored day's period figures, oldest first; the days done."""
        done = self.daily.run(now)
        for day in done:
            self._judge_periods(date.fromisoformat(day), now)
        return done

    def _judge_periods(self, day: date, now: datetime) -> None:
        figures: dict[tuple[str, str], list[RegionFigure]] = {}

        def figures_for(rule: RegionalPeriodRule) -> list[RegionFigure]:
            key = (rule.config.group_by, rule.config.period)
            if key not in figures:
                figures[key] = region_figures(
                    self._db_path,
                    self._registry,
                    self.engine.standard,
                    self._rules,
                    group_by=rule.config.group_by,
                    period=rule.config.period,
                    day=day,
                )
            return figures[key]

        self.engine.judge_periods(figures_for, now)

    def housekeep(self, now: datetime) -> dict[str, int]:
        """Prune what is past its retention (`AlertEngine.housekeep`); the rows deleted, by table."""
        return self.engine.housekeep(now)

    # --- the operator side -----------------------------------------------------------------------
    def routes(self) -> dict[tuple[str, str], Handler]:
        return self.api.routes()

    def snapshot(self) -> AlertSnapshot:
        """The alert state at a glance, for the dashboard's live stream (`AlertsAPI.snapshot`)."""
        return self.api.snapshot()

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
        raise SinkError(SinkReason.ALERT_DB, f"{operation}: {exc}", retryable=True) from exc
