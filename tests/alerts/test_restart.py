"""Persistence: restarts (clean and crashed) mid-pending and mid-firing, failed transactions, retired rules."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.events import AlertEvent
from alerts.lifecycle import AlertState
from alerts.service import AlertService
from alerts.store import AlertStore
from ingest.errors import SinkError
from tests.alerts.engine_support import (
    T0,
    FakeClock,
    events,
    make_service,
    notices,
    one_station_registry,
    rules_config,
    water,
)

PENDING_RULE: dict[str, Any] = {
    "name": "compliance_drop",
    "kind": "compliance_drop",
    "for": "PT30M",
    "recovery": {"samples": 2},
}


def _reopen(tmp_path: Path, clock: FakeClock, config: dict[str, Any] = PENDING_RULE) -> AlertService:
    return make_service(tmp_path, one_station_registry(), rules_config(config), clock)


def test_restart_in_the_middle_of_pending(tmp_path: Path) -> None:
    """A pending alert survives a clean restart and fires when its time comes, once."""
    clock = FakeClock()
    first = _reopen(tmp_path, clock)
    first.write(water(T0, nh3n=1.2))
    first.tick(clock.advance(minutes=10))
    first.close()
    second = _reopen(tmp_path, clock)
    [record] = second.engine.alerts.values()
    assert (record.state, record.since_ns) == (
        AlertState.PENDING,
        first.engine.alerts[record.alert_id].since_ns,
    )
    second.tick(clock.advance(minutes=20))
    [event] = events(second)
    assert (event.status, event.starts_at, event.key) == ("firing", T0, f"{record.alert_id}:1")


def test_restart_in_the_middle_of_firing_keeps_recovery_progress(tmp_path: Path) -> None:
    """A firing alert with one clean sample counted resumes after a restart and resolves on the second."""
    clock = FakeClock()
    first = _reopen(tmp_path, clock)
    first.write(water(T0, nh3n=1.2))
    first.tick(clock.advance(minutes=30))
    first.write(water(T0 + timedelta(hours=1), nh3n=0.3))
    first.close()
    second = _reopen(tmp_path, clock)
    [record] = second.engine.alerts.values()
    assert (record.state, record.clear_samples) == (AlertState.FIRING, 1)
    second.write(water(T0 + timedelta(hours=2), nh3n=0.3))
    assert [(e.status, e.key.rsplit(":", 1)[1]) for e in events(second)] == [
        ("firing", "1"),
        ("resolved", "2"),
    ]


def test_crash_then_replay_of_the_log_notifies_nothing_twice(tmp_path: Path) -> None:
    """After a crash (never closed) the replayed batch is recognised; the next change notifies once."""
    clock = FakeClock()
    crashed = _reopen(tmp_path, clock, {**PENDING_RULE, "for": "PT0S"})
    batch = [*water(T0, nh3n=1.2), *water(T0 + timedelta(hours=1), nh3n=1.4)]
    crashed.write(batch)  # committed, but the delivery loop died before committing its offset
    assert notices(crashed) == [("compliance_drop", "firing", False)]
    survivor = _reopen(tmp_path, clock, {**PENDING_RULE, "for": "PT0S"})  # the first never closed
    survivor.write(batch)
    survivor.write(water(T0 + timedelta(hours=2)))
    survivor.write(water(T0 + timedelta(hours=3)))
    assert notices(survivor) == [("compliance_drop", "firing", False), ("compliance_drop", "resolved", False)]
    assert len({e.key for e in events(survivor)}) == 2


def test_failed_transaction_rolls_back_and_the_retry_notifies_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error mid-write raises a retryable SinkError, leaves nothing behind, and the retry succeeds."""
    clock = FakeClock()
    service = _reopen(tmp_path, clock, {**PENDING_RULE, "for": "PT0S"})
    real_add_event = AlertStore.add_event
    calls = {"n": 0}

    def failing_add_event(self: AlertStore, event: AlertEvent, created_ns: int) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database is locked")
        return real_add_event(self, event, created_ns)

    monkeypatch.setattr(AlertStore, "add_event", failing_add_event)
    batch = water(T0, nh3n=1.2)
    with pytest.raises(SinkError) as caught:
        service.write(batch)
    assert caught.value.retryable
    assert service.engine.alerts == {}  # the in-memory state went back to what the database holds
    assert service.store.history(limit=10) == []
    service.write(batch)
    assert notices(service) == [("compliance_drop", "firing", False)]


def test_alerts_of_a_removed_rule_are_retired_with_a_resolved_notice(tmp_path: Path) -> None:
    """A firing alert whose rule is no longer configured resolves at start, so receivers are not left hanging."""
    clock = FakeClock()
    first = _reopen(tmp_path, clock, {**PENDING_RULE, "for": "PT0S"})
    first.write(water(T0, nh3n=1.2))
    first.close()
    second = _reopen(tmp_path, clock, {"name": "silent_station", "kind": "silent_station"})
    assert [(rule, status) for rule, status, _ in notices(second)] == [
        ("compliance_drop", "firing"),
        ("compliance_drop", "resolved"),
    ]
    assert next(iter(second.engine.alerts.values())).state is AlertState.RESOLVED
    assert second.store.history(limit=1)[0]["transition"] == "retired"


def test_windows_survive_a_restart(tmp_path: Path) -> None:
    """Rolling means after a restart include the samples written before it."""
    clock = FakeClock()
    rule = {"name": "daily", "kind": "compliance_drop", "window": "P1D", "for": "PT0S"}
    first = _reopen(tmp_path, clock, rule)
    first.write(water(T0, nh3n=0.9))
    first.close()
    second = _reopen(tmp_path, clock, rule)
    second.write(water(T0 + timedelta(hours=1), nh3n=0.3))  # mean 0.6: still worse than class II
    second.write(water(T0 + timedelta(hours=2), nh3n=0.3))  # mean 0.5: class II
    assert [s for _, s, _ in notices(second)] == ["firing"]
    assert second.engine.alerts[next(iter(second.engine.alerts))].clear_samples == 1


def test_database_trouble_is_a_retryable_sink_error(tmp_path: Path) -> None:
    """Writes and readiness checks against an unusable database raise SinkError(retryable=True)."""
    service = _reopen(tmp_path, FakeClock())
    service.check()
    service.close()
    with pytest.raises(SinkError) as write_error:
        service.write(water(T0))
    with pytest.raises(SinkError) as check_error:
        service.check()
    assert write_error.value.retryable
    assert check_error.value.retryable
    assert write_error.value.reason == "alert_db"


def test_state_is_reloaded_before_the_next_call_when_a_reload_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If even the reload after a failed write fails, the next call reloads first: a replay stays harmless."""
    clock = FakeClock()
    service = _reopen(tmp_path, clock, {**PENDING_RULE, "for": "PT0S", "recovery": {"samples": 1}})
    first = water(T0, nh3n=1.2)
    service.write(first)
    with monkeypatch.context() as patch:
        patch.setattr(AlertStore, "add_history", _broken)
        patch.setattr(AlertStore, "load_alerts", _broken)
        with pytest.raises(SinkError):
            service.write(water(T0 + timedelta(hours=1), nh3n=0.3))
    service.write(first)  # the delivery loop retries from its offset: a replay
    service.write(water(T0 + timedelta(hours=1), nh3n=0.3))
    service.write(water(T0 + timedelta(hours=2), nh3n=0.3))
    assert notices(service) == [("compliance_drop", "firing", False), ("compliance_drop", "resolved", False)]


def _broken(*_args: object, **_kwargs: object) -> None:
    raise sqlite3.OperationalError("disk I/O error")
