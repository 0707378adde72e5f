"""The engine through the service, on scripted streams with a fake clock: lifecycle, replay, events."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from alerts.lifecycle import AlertState
from alerts.service import AlertService
from config.registry import Registry
from ingest.model import DataFlag
from tests.alerts.engine_support import (
    T0,
    FakeClock,
    events,
    feed,
    make_service,
    notices,
    one_station_registry,
    reading,
    rules_config,
    water,
)
from tests.helpers import station

COMPLIANCE = {"name": "compliance_drop", "kind": "compliance_drop", "severity": "critical"}


def test_pending_fires_on_the_tick_once_for_has_passed(tmp_path: Path) -> None:
    """A drop pending for PT30M fires on the first tick 30 minutes later, starting when it began."""
    clock = FakeClock()
    service = make_service(
        tmp_path, one_station_registry(), rules_config({**COMPLIANCE, "for": "PT30M"}), clock
    )
    service.write(water(T0, nh3n=1.2))
    service.tick(clock.advance(minutes=29))
    assert notices(service) == []
    service.tick(clock.advance(minutes=1))
    [event] = events(service)
    assert (event.status, event.starts_at, event.event_at) == ("firing", T0, T0 + timedelta(minutes=30))


def test_ticks_do_not_run_ahead_of_a_stale_station(tmp_path: Path) -> None:
    """Pending time is station time: no further than one report interval past its newest reading."""
    clock = FakeClock(T0 + timedelta(hours=5))
    service = make_service(
        tmp_path, one_station_registry(), rules_config({**COMPLIANCE, "for": "PT2H"}), clock
    )
    service.write(water(T0, nh3n=1.2))  # a backlog being replayed: five hours old
    service.tick(clock.now)
    assert notices(service) == []  # held for 1 h of station time only
    service.write(water(T0 + timedelta(hours=1), nh3n=0.3))
    service.tick(clock.now)
    assert notices(service) == []  # the backlog shows it cleared: cancelled, never fired
    [record] = service.engine.alerts.values()
    assert record.state is AlertState.OK


def test_value_hovering_at_a_class_limit_fires_once(tmp_path: Path) -> None:
    """Flipping around the class II NH3-N limit gives one firing notice until two clean samples in a row."""
    clock = FakeClock()
    config = rules_config({**COMPLIANCE, "renotify_interval": "PT0S"})
    service = make_service(tmp_path, one_station_registry(), config, clock)
    values = [0.51, 0.49, 0.52, 0.48, 0.55, 0.49, 0.47]
    feed(
        service,
        clock,
        [water(clock.now + timedelta(hours=i), nh3n=v) for i, v in enumerate(values)],
        every=timedelta(hours=1),
    )
    assert notices(service) == [("compliance_drop", "firing", False), ("compliance_drop", "resolved", False)]
    resolved = events(service)[-1]
    assert resolved.ends_at == T0 + timedelta(hours=5)  # back within target from the first of the clean pair


def test_flapping_across_resolutions_is_damped(tmp_path: Path) -> None:
    """An identity that fires again soon after a resolved notice waits for min_refire_interval."""
    clock = FakeClock()
    config = rules_config({**COMPLIANCE, "recovery": {"samples": 1}, "min_refire_interval": "PT4H"})
    service = make_service(tmp_path, one_station_registry(), config, clock)
    values = [1.2, 0.3, 1.2, 0.3, 1.2, 1.2, 1.2]
    feed(
        service,
        clock,
        [water(T0 + timedelta(hours=i), nh3n=v) for i, v in enumerate(values)],
        every=timedelta(hours=1),
    )
    statuses = [(e.status, e.event_at - T0) for e in events(service)]
    assert statuses == [
        ("firing", timedelta(0)),
        ("resolved", timedelta(hours=1)),
        ("firing", timedelta(hours=5)),  # damped at 2 h and 4 h, released 4 h after the resolved notice
    ]
    history = [
        h["transition"] for h in reversed(service.store.history(limit=100)) if h["rule"] == "compliance_drop"
    ]
    assert (history.count("damped"), history.count("released")) == (2, 1)


def test_replayed_batch_notifies_nothing_twice(tmp_path: Path) -> None:
    """Writing the same readings again (a crash replay) changes nothing and is counted as duplicates."""
    clock = FakeClock()
    service = make_service(tmp_path, one_station_registry(), rules_config(COMPLIANCE), clock)
    batch = [*water(T0, nh3n=1.2), *water(T0 + timedelta(hours=1), nh3n=1.3)]
    service.write(batch)
    before = (notices(service), service.store.history(limit=100))
    service.write(batch)
    service.write(list(reversed(batch)))
    assert (notices(service), service.store.history(limit=100)) == before
    assert service.engine.counts["duplicate"] == 2 * len(batch)


def test_late_readings_do_not_reopen_and_too_late_ones_are_ignored(tmp_path: Path) -> None:
    """A late bad reading re-opens nothing; one beyond the allowed lateness is ignored and counted."""
    clock = FakeClock()
    config = rules_config({**COMPLIANCE, "recovery": {"samples": 1}}, allowed_lateness="PT6H")
    service = make_service(tmp_path, one_station_registry(), config, clock)
    service.write(water(T0 + timedelta(hours=10), nh3n=1.2))
    service.write(water(T0 + timedelta(hours=11), nh3n=0.3))
    assert [s for _, s, _ in notices(service)] == ["firing", "resolved"]
    service.write(water(T0 + timedelta(hours=10, minutes=30), nh3n=2.0))  # late, within 6 h
    service.write(water(T0 + timedelta(hours=1), nh3n=2.0))  # beyond the lateness
    service.tick(T0 + timedelta(hours=11))
    assert [s for _, s, _ in notices(service)] == ["firing", "resolved"]
    counts = service.engine.counts
    assert (counts["late"], counts["too_late"]) == (4, 4)


def test_events_carry_labels_annotations_station_and_values(tmp_path: Path) -> None:
    """A firing event names the station, classes, pollutants and values; the resolved one its end."""
    clock = FakeClock()
    config = rules_config({**COMPLIANCE, "labels": {"team": "water"}, "recovery": {"samples": 1}})
    service = make_service(tmp_path, one_station_registry(), config, clock)
    service.write(water(T0, nh3n=1.8))
    service.write(water(T0 + timedelta(hours=1)))
    firing, resolved = events(service)
    assert firing.key == f"{firing.alert_id}:1"
    assert resolved.key == f"{firing.alert_id}:2"
    assert firing.labels == {
        "rule": "compliance_drop",
        "kind": "compliance_drop",
        "severity": "critical",
        "category": "water",
        "team": "water",
        "station_id": "st-1",
        "district": "Yuzhong",
        "basin": "Yangtze",
        "river": "Jialing, upper",
    }
    assert (firing.water_class, firing.target_class, firing.primary_pollutants) == ("V", "II", ("nh3n",))
    assert firing.values["nh3n"] == 1.8
    assert firing.station is not None
    assert firing.station.name == "Station st-1"
    assert "未达到目标II类" in firing.annotations["summary"]
    assert "primary pollutants" in firing.annotations["description"]
    assert firing.links["station"] == "/api/v1/stations?id=st-1"
    assert (resolved.status, resolved.starts_at, resolved.ends_at) == (
        "resolved",
        T0,
        T0 + timedelta(hours=1),
    )
    # The resolved summary is the clearing finding's; the channels' templates say 已恢复 themselves.
    assert (
        resolved.annotations["summary"] == "Station st-1: 水质II类，达到目标II类 / class II meets target II"
    )


def test_history_records_the_readings_behind_each_transition(tmp_path: Path) -> None:
    """Each transition row holds the values and the readings (value, time, flag) that caused it."""
    service = make_service(tmp_path, one_station_registry(), rules_config(COMPLIANCE))
    service.write(water(T0, nh3n=1.8))
    rows = list(reversed(service.store.history(limit=10)))
    assert [(r["transition"], r["from_state"], r["to_state"]) for r in rows] == [
        ("pending", "ok", "pending"),
        ("firing", "pending", "firing"),
    ]
    firing = rows[1]
    assert firing["event_key"] is not None
    assert firing["detail"]["evidence"] == [
        {"parameter": "nh3n", "value": 1.8, "time_ns": rows[1]["at_ns"], "flag": "N", "samples": 1}
    ]
    assert firing["detail"]["values"]["nh3n"] == 1.8


def test_readings_of_unregistered_stations_are_ignored(tmp_path: Path) -> None:
    """The registry is the inventory: readings of other stations are counted and dropped."""
    service = make_service(tmp_path, one_station_registry(), rules_config(COMPLIANCE))
    service.write(water(T0, station_id="elsewhere", nh3n=5.0))
    assert notices(service) == []
    assert service.engine.counts["unknown_station"] == 4


def test_silent_stations_including_never_seen_ones(tmp_path: Path) -> None:
    """A silent reporter and a station that never reported both alert; the reporter recovers on its next reading."""
    registry = Registry([station("talks", report_interval_s=600), station("mute", report_interval_s=600)])
    clock = FakeClock()
    config = rules_config(
        {"name": "silent_station", "kind": "silent_station", "intervals": 3, "recovery": {"samples": 1}}
    )
    service = make_service(tmp_path, registry, config, clock)
    service.write(water(T0, station_id="talks"))
    service.tick(clock.advance(minutes=29))
    assert notices(service) == []
    service.tick(clock.advance(minutes=1))
    assert sorted(e.labels["station_id"] for e in events(service)) == ["mute", "talks"]
    service.write(water(clock.advance(minutes=5), station_id="talks"))
    resolved = [e for e in events(service) if e.status == "resolved"]
    assert [e.labels["station_id"] for e in resolved] == ["talks"]


def test_instrument_fault_persisting_past_for(tmp_path: Path) -> None:
    """Maintenance flags fire after `for` and resolve on the first normal report."""
    clock = FakeClock()
    config = rules_config(
        {"name": "instrument_fault", "kind": "instrument_fault", "for": "PT10M", "recovery": {"samples": 1}}
    )
    service = make_service(tmp_path, one_station_registry(), config, clock)
    flagged = [reading("do", 8.0, T0, flag=DataFlag.MAINTENANCE), reading("ph", 7.5, T0)]
    service.write(flagged)
    service.tick(clock.advance(minutes=5))
    assert notices(service) == []
    service.tick(clock.advance(minutes=5))
    service.write(water(clock.advance(minutes=30)))
    assert notices(service) == [
        ("instrument_fault", "firing", False),
        ("instrument_fault", "resolved", False),
    ]
    assert events(service)[0].values == {"do": 8.0}


def test_regional_rate_fires_on_ticks(tmp_path: Path) -> None:
    """The district rate is evaluated on ticks and resolves when every point meets its target again."""
    registry = Registry([station("a", district="D"), station("b", district="D")])
    clock = FakeClock()
    config = rules_config(
        {
            "name": "district_compliance",
            "kind": "regional_compliance",
            "group_by": "district",
            "recovery": {"samples": 1},
        }
    )
    service = make_service(tmp_path, registry, config, clock)
    service.write([*water(T0, station_id="a"), *water(T0, station_id="b", nh3n=2.5)])
    assert notices(service) == []  # regional rules run on ticks only
    service.tick(clock.advance(seconds=10))
    [firing] = events(service)
    assert firing.labels["district"] == "D"
    assert firing.station is None
    assert firing.values["share_meeting_target"] == 0.5
    service.write(water(clock.advance(minutes=10), station_id="b"))
    service.tick(clock.advance(seconds=10))
    assert [e.status for e in events(service)] == ["firing", "resolved"]


def test_reminders_while_firing(tmp_path: Path) -> None:
    """A firing alert is re-notified every renotify_interval of wall time, marked as a reminder."""
    clock = FakeClock()
    service = make_service(
        tmp_path, one_station_registry(), rules_config({**COMPLIANCE, "renotify_interval": "PT1H"}), clock
    )
    service.write(water(T0, nh3n=1.8))
    for _ in range(6):
        service.tick(clock.advance(minutes=20))
    assert (
        notices(service) == [("compliance_drop", "firing", False)] + [("compliance_drop", "firing", True)] * 2
    )
    keys = [e.key.rsplit(":", 1)[1] for e in events(service)]
    assert keys == ["1", "2", "3"]


def test_every_station_alert_tells_the_station_class(tmp_path: Path) -> None:
    """An exceedance notice carries the station's class and primary pollutants too, not only the value."""
    config = rules_config({"name": "exceedance", "kind": "exceedance"})
    service = make_service(tmp_path, one_station_registry(), config)
    service.write(water(T0, nh3n=1.2))
    [event] = events(service)
    assert (event.parameter, event.water_class, event.target_class) == ("nh3n", "IV", "II")
    assert event.primary_pollutants == ("nh3n",)
    assert event.values == {"nh3n": 1.2, "nh3n_high": 0.5}


def test_an_engine_judges_the_silence_of_the_stations_it_watches_only(tmp_path: Path) -> None:
    """A cluster partition's engine watches its own stations: one that never reports alerts, the
    stations of other partitions (whose readings it never sees) do not; readings of any station
    are still evaluated."""
    registry = Registry([station(sid, report_interval_s=600) for sid in ("mine", "mine-mute", "theirs")])
    clock = FakeClock()
    config = rules_config(
        {"name": "silent_station", "kind": "silent_station", "intervals": 3, "recovery": {"samples": 1}},
        COMPLIANCE,
    )
    service = AlertService(
        config, registry, tmp_path / "alerts.db", clock=clock, watched=lambda sid: sid.startswith("mine")
    )
    service.write(water(T0, station_id="mine"))
    service.write(water(T0, station_id="theirs", nh3n=1.8))
    service.tick(clock.advance(minutes=30))
    by_rule = sorted((e.rule, e.labels["station_id"]) for e in events(service))
    assert by_rule == [
        ("compliance_drop", "theirs"),
        ("silent_station", "mine"),
        ("silent_station", "mine-mute"),
    ]


def test_an_engine_without_regions_runs_no_regional_rule(tmp_path: Path) -> None:
    """`regions=False` (a cluster partition sees part of a region) leaves the REGION rules out."""
    registry = Registry([station("a", district="D"), station("b", district="D")])
    clock = FakeClock()
    config = rules_config(
        {"name": "district_compliance", "kind": "regional_compliance", "group_by": "district"}
    )
    service = AlertService(config, registry, tmp_path / "alerts.db", clock=clock, regions=False)
    service.write([*water(T0, station_id="a"), *water(T0, station_id="b", nh3n=2.5)])
    service.tick(clock.advance(seconds=10))
    assert events(service) == []
