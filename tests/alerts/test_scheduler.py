"""The time-driven work: the APScheduler jobs, the daily assessment and its catch-up, housekeeping."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.service import AlertService
from tests.alerts.engine_support import (
    T0,
    FakeClock,
    make_service,
    one_station_registry,
    report,
    rules_config,
    water,
)
from tests.helpers import wait_for

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULE = {"name": "compliance_drop", "kind": "compliance_drop"}


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 7, day, hour, minute, tzinfo=SHANGHAI)


def _service(tmp_path: Path, clock: FakeClock, **scheduler: object) -> AlertService:
    config = rules_config(
        RULE, scheduler={"daily_assessment_at": "08:00", "timezone": "Asia/Shanghai", **scheduler}
    )
    return make_service(tmp_path, one_station_registry(), config, clock)


def test_scheduler_runs_the_tick_at_start_and_plans_the_daily_assessment(tmp_path: Path) -> None:
    """start() runs a tick and the assessment catch-up at once; the next assessment is at 08:00 local."""
    clock = FakeClock()
    service = _service(tmp_path, clock, tick_interval="PT1S", misfire_grace_time="PT30S")
    service.start()
    try:
        runs = service.scheduler.runs
        wait_for(
            lambda: runs["tick"] >= 1 and runs["daily_assessment"] >= 1,
            "a tick and the assessment catch-up",
            5,
            detail=lambda: dict(runs),
            interval=0.01,
        )
        next_runs = service.scheduler.next_runs()
        assessment = next_runs["daily_assessment"]
        assert assessment is not None
        local = assessment.astimezone(SHANGHAI)
        assert (local.hour, local.minute) == (8, 0)
        settings = service.scheduler.job_settings()
        assert set(settings) == {"tick", "daily_assessment", "housekeeping"}
        assert all(
            s == {"coalesce": True, "max_instances": 1, "misfire_grace_time": 30} for s in settings.values()
        )
    finally:
        service.close()
    assert not service.scheduler.running


def test_daily_assessment_of_the_previous_local_day(tmp_path: Path) -> None:
    """At 08:00 local the previous day is judged by the 2011 method, stored once and recorded."""
    clock = FakeClock()
    service = _service(tmp_path, clock)
    for hour, nh3n in ((1, 0.4), (5, 0.8), (9, 0.6), (13, 0.4), (17, 0.8), (21, 0.6)):  # 2026-07-01: 0.6, III
        service.write(report(_local(1, hour), {"nh3n": nh3n, "tp": 0.08}))
    service.write(water(_local(2, 1), nh3n=5.0))  # the next day: not part of it
    assert service.assess(_local(2, 7, 59)) == []
    assert service.assess(_local(2, 8, 0)) == ["2026-07-01"]
    assert service.assess(_local(2, 9, 0)) == []
    summary = service.store.assessment("2026-07-01")
    assert summary is not None
    st = summary["stations"]["st-1"]
    assert (st["class"], st["target"], st["compliant"], st["samples"]) == ("III", "II", False, 30)
    assert st["means"]["nh3n"] == 0.6
    [district] = summary["rates"]["district"]
    assert (district["district"], district["share_meeting_target"]) == ("Yuzhong", 0.0)
    [note] = service.store.history(rule="daily_assessment")
    assert note["alert_id"] == "assessment:2026-07-01"


def test_assessment_catches_up_missed_days_in_one_run(tmp_path: Path) -> None:
    """After downtime one run assesses every missed day with samples, oldest first, and skips empty ones."""
    clock = FakeClock()
    service = _service(tmp_path, clock)
    service.write(water(_local(1, 12)))
    service.write(water(_local(3, 12)))
    assert service.assess(_local(4, 10)) == ["2026-07-01", "2026-07-03"]


def test_housekeeping_prunes_old_history_and_samples(tmp_path: Path) -> None:
    """History past the retention and samples past the windows are deleted; recent ones stay."""
    clock = FakeClock()
    config = rules_config(RULE, history_retention="P2D", allowed_lateness="PT1H")
    service = make_service(tmp_path, one_station_registry(), config, clock)
    service.write(water(T0, nh3n=1.8))
    service.write(water(clock.advance(days=5)))
    service.write(water(clock.advance(hours=1)))
    counts = service.housekeep(T0 + timedelta(days=3))
    assert counts["history"] == 2  # pending and firing at T0, recorded then
    assert counts["samples"] == 4  # the T0 report: older than the 2 days + 1 h kept
    assert [h["transition"] for h in service.store.history()] == ["resolved"]
