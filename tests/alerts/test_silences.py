"""Silences and acknowledgements: what is still recorded, what is marked, what is not sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.engine import NotActiveError
from alerts.silences import Silence, SilenceRequest
from tests.alerts.engine_support import (
    T0,
    FakeClock,
    events,
    make_service,
    one_station_registry,
    rules_config,
    water,
)

RULE = {
    "name": "compliance_drop",
    "kind": "compliance_drop",
    "recovery": {"samples": 1},
    "renotify_interval": "PT1H",
}


def _silence(now: datetime, hours: float, **matchers: Any) -> Silence:
    request = SilenceRequest.model_validate(
        {
            "matchers": matchers,
            "ends_at": now + timedelta(hours=hours),
            "by": "Li",
            "reason": "dredging upstream",
        }
    )
    return Silence.from_request(request, now)


def test_matchers_take_exact_values_and_anchored_regexes() -> None:
    """An exact matcher compares the whole value; a regex must match the whole value too."""
    silence = _silence(T0, 1, station_id="st-1", rule={"regex": "compliance_.*|exceedance"})
    assert silence.matches({"station_id": "st-1", "rule": "compliance_drop"})
    assert silence.matches({"station_id": "st-1", "rule": "exceedance"})
    assert not silence.matches({"station_id": "st-1", "rule": "exceedance_extra"})
    assert not silence.matches({"station_id": "st-10", "rule": "exceedance"})
    assert silence.active(silence.starts_ns)
    assert not silence.active(silence.ends_ns)


def test_silence_requests_are_validated() -> None:
    """A silence needs matchers, an author, a reason, an aware end after its start and compiling regexes."""
    good = {"matchers": {"rule": "x"}, "ends_at": "2026-07-01T10:00:00+08:00", "by": "Li", "reason": "r"}
    SilenceRequest.model_validate(good)
    for bad in (
        {**good, "matchers": {}},
        {**good, "by": ""},
        {**good, "ends_at": "2026-07-01T10:00:00"},
        {**good, "starts_at": "2026-07-01T11:00:00+08:00"},
        {**good, "matchers": {"rule": {"regex": "("}}},
        {**good, "extra": 1},
    ):
        with pytest.raises(ValidationError):
            SilenceRequest.model_validate(bad)


def test_silenced_alert_is_recorded_marked_and_not_reminded(tmp_path: Path) -> None:
    """Under a silence the firing event is written with silenced=True, reminders are not, history is kept."""
    clock = FakeClock()
    service = make_service(tmp_path, one_station_registry(), rules_config(RULE), clock)
    service.engine.add_silence(_silence(clock.now, 3, station_id="st-1"))
    service.write(water(T0, nh3n=1.8))
    for _ in range(4):
        service.tick(clock.advance(minutes=30))
    [firing] = events(service)
    assert (firing.status, firing.silenced) == ("firing", True)
    assert "dredging upstream" in firing.annotations["silenced_by"]
    assert [h["transition"] for h in reversed(service.store.history(limit=10))] == ["pending", "firing"]


def test_firing_is_notified_when_its_silence_ends(tmp_path: Path) -> None:
    """An alert still firing when its silence expires gets one unsilenced firing event, then reminders."""
    clock = FakeClock()
    service = make_service(tmp_path, one_station_registry(), rules_config(RULE), clock)
    silence = _silence(clock.now, 3, station_id="st-1")
    service.engine.add_silence(silence)
    service.write(water(T0, nh3n=1.8))
    service.tick(clock.advance(minutes=30))
    service.engine.expire_silence(silence.id, clock.advance(minutes=1))
    service.tick(clock.now)
    service.tick(clock.advance(minutes=30))
    service.tick(clock.advance(minutes=30))
    assert [(e.silenced, e.reminder) for e in events(service)] == [
        (True, False),
        (False, False),
        (False, True),
    ]
    with pytest.raises(KeyError):
        service.engine.expire_silence("no-such-silence", clock.now)


def test_resolution_under_a_silence_is_written_silenced(tmp_path: Path) -> None:
    """A resolution during a silence is recorded as a silenced resolved event (the audit trail is complete)."""
    clock = FakeClock()
    service = make_service(tmp_path, one_station_registry(), rules_config(RULE), clock)
    service.write(water(T0, nh3n=1.8))
    service.engine.add_silence(_silence(clock.now, 3, rule="compliance_drop"))
    service.write(water(clock.advance(hours=1)))
    assert [(e.status, e.silenced) for e in events(service)] == [("firing", False), ("resolved", True)]


def test_acknowledged_alert_stops_reminding_but_resolves_and_fires_again(tmp_path: Path) -> None:
    """An ack stops reminders; the alert still resolves, and a new episode fires unacknowledged."""
    clock = FakeClock()
    service = make_service(tmp_path, one_station_registry(), rules_config(RULE), clock)
    service.write(water(T0, nh3n=1.8))
    [record] = service.engine.alerts.values()
    acked = service.engine.acknowledge(record.alert_id, "Wang", "crew on the way", clock.advance(minutes=5))
    assert (acked.acked_by, acked.ack_comment) == ("Wang", "crew on the way")
    for _ in range(3):
        service.tick(clock.advance(hours=1))
    service.write(water(clock.now))
    service.write(water(clock.advance(hours=1), nh3n=1.8))
    assert [(e.status, e.acknowledged, e.reminder) for e in events(service)] == [
        ("firing", False, False),
        ("resolved", True, False),
        ("firing", False, False),
    ]
    assert service.store.history(limit=10, alert_id=record.alert_id)[-3]["transition"] == "acknowledged"
    service.write(water(clock.advance(hours=1)))
    with pytest.raises(NotActiveError):
        service.engine.acknowledge(record.alert_id, "Wang", None, clock.now)
    with pytest.raises(KeyError):
        service.engine.acknowledge("0" * 16, "Wang", None, clock.now)


def test_silences_survive_a_restart(tmp_path: Path) -> None:
    """Silences are stored: after a restart they still mark events."""
    clock = FakeClock()
    first = make_service(tmp_path, one_station_registry(), rules_config(RULE), clock)
    first.engine.add_silence(_silence(clock.now, 3, station_id="st-1"))
    first.close()
    second = make_service(tmp_path, one_station_registry(), rules_config(RULE), clock)
    second.write(water(T0, nh3n=1.8))
    assert [e.silenced for e in events(second)] == [True]
