"""The alert engine's clock: APScheduler (3.x BackgroundScheduler) runs the time-driven work.

Jobs, all with `coalesce=True`, `max_instances=1` and `misfire_grace_time` from the config:
- `tick` every `tick_interval` (10 s), first run at start: silent stations, pending → firing and
  recovery by time, regional roll-ups, reminders (`AlertEngine.tick`).
- `daily_assessment` at `daily_assessment_at` in `timezone` (08:00 Asia/Shanghai), and once at
  start: assesses every due day not yet assessed by the 2011 method and stores its summary and
  daily values (`alerts.assessment.DailyAssessment.run`).
- `housekeeping` every `housekeeping_interval`: prunes old history, samples, silences
  (`AlertEngine.housekeep`).

Missed runs. While the process runs, a job delayed past its slot (a suspended machine, a tick
still busy) runs once when it can if it is within `misfire_grace_time` late — missed runs are
coalesced into that one, since a tick or a prune catches up by itself — and is skipped to its
next slot otherwise. APScheduler keeps its jobs in memory, so runs missed while the process was
down are unknown to it: the tick and the assessment therefore run right at start, and the
assessment finds its missed days in the database (the `assessments` table) and makes up each
of the last `catch_up_days` that has results (in the readings store, or in the engine's samples
while they are kept), one run for all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from alerts.config import SchedulerConfig

log = structlog.get_logger(__name__)

JOB_IDS: Final = ("tick", "daily_assessment", "housekeeping")


class AlertScheduler:
    """Runs the three jobs on a background thread between `start` and `stop`."""

    def __init__(
        self,
        config: SchedulerConfig,
        *,
        tick: Callable[[], object],
        assess: Callable[[], object],
        housekeep: Callable[[], object],
    ) -> None:
        self.config = config
        self._zone = ZoneInfo(config.timezone)
        self._jobs: dict[str, Callable[[], object]] = {
            "tick": tick,
            "daily_assessment": assess,
            "housekeeping": housekeep,
        }
        self.runs: dict[str, int] = dict.fromkeys(JOB_IDS, 0)
        self._scheduler: Any = None

    def start(self) -> None:
        if self._scheduler is not None:
            return
        config = self.config
        # APScheduler logs every run at INFO through the stdlib; a tick every 10 s is routine.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        scheduler = BackgroundScheduler(
            timezone=self._zone,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, int(config.misfire_grace_time.total_seconds())),
            },
        )
        now = datetime.now(self._zone)
        scheduler.add_job(
            self._runner("tick"),
            IntervalTrigger(seconds=config.tick_interval.total_seconds(), timezone=self._zone),
            id="tick",
            next_run_time=now,
        )
        at = config.daily_assessment_at
        scheduler.add_job(
            self._runner("daily_assessment"),
            CronTrigger(hour=at.hour, minute=at.minute, second=at.second, timezone=self._zone),
            id="daily_assessment",
            next_run_time=now,
        )
        scheduler.add_job(
            self._runner("housekeeping"),
            IntervalTrigger(seconds=config.housekeeping_interval.total_seconds(), timezone=self._zone),
            id="housekeeping",
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "alert_scheduler_started", tick_s=config.tick_interval.total_seconds(), timezone=config.timezone
        )

    def stop(self) -> None:
        if self._scheduler is None:
            return
        self._scheduler.shutdown(wait=True)
        self._scheduler = None
        log.info("alert_scheduler_stopped")

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def next_runs(self) -> dict[str, datetime | None]:
        """Each job's next run time (for /api/v1/stats and tests)."""
        if self._scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    def job_settings(self) -> dict[str, dict[str, Any]]:
        if self._scheduler is None:
            return {}
        return {
            job.id: {
                "coalesce": job.coalesce,
                "max_instances": job.max_instances,
                "misfire_grace_time": job.misfire_grace_time,
            }
            for job in self._scheduler.get_jobs()
        }

    def _runner(self, job_id: str) -> Callable[[], None]:
        work = self._jobs[job_id]

        def run() -> None:
            try:
                work()
            except Exception:
                # The next run retries; the engine's state is what its database holds.
                log.exception("alert_job_failed", job=job_id)
            finally:
                self.runs[job_id] += 1

        return run
