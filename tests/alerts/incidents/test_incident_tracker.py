"""The incident tracker on a small network: spills followed downstream, origins, forecasts, status."""

from __future__ import annotations

import json

import pytest

from alerts.incidents.config import IncidentConfig
from alerts.incidents.model import EventKind, Incident, Status
from alerts.incidents.tracker import IncidentTracker, replay
from tests.alerts.incidents.incident_network import CLEAN, LIMIT, T0, H, Spill, network, readings

# ETAs must land within this of the hour the generator makes the plume arrive (hourly reports).
ETA_TOLERANCE_NS = 1 * H


def _run(spills: list[Spill], hours: int = 72) -> tuple[IncidentTracker, list[tuple[EventKind, str | None]]]:
    tracker = IncidentTracker(network())
    events = replay(tracker, readings(tracker.network, spills, hours))
    return tracker, [(e.kind, e.station_id) for e in events]


def _only(tracker: IncidentTracker) -> Incident:
    (incident,) = tracker.incidents()
    return incident


def test_a_spill_upstream_is_one_incident_confirmed_downstream_with_origin_and_etas() -> None:
    """A release between M1 and M2 is seen at M2, M3, M4: one incident, origin M1–M2, ETAs on time."""
    net = network()
    tracker = IncidentTracker(net)
    feed = list(readings(net, [Spill("Main", 50, start_h=12)], hours=72))
    first_forecast = None
    for row in feed:
        events = tracker.observe(*row)
        if any(e.kind is EventKind.OPENED for e in events):
            first_forecast = {f.point_id: f.eta_ns for f in _only(tracker).forecast}
    incident = _only(tracker)
    assert [s.station_id for s in incident.in_flow_order()] == ["M2", "M3", "M4"]
    assert [s.first_exceeded_ns for s in incident.in_flow_order()] == [T0 + 15 * H, T0 + 21 * H, T0 + 26 * H]
    assert incident.origin is not None
    assert (incident.origin.river, incident.origin.downstream) == ("Main", "M2")
    assert [(b.station_id, b.verified) for b in incident.origin.upstream] == [("M1", True)]
    # Entered between M1 (6 h above M2) and M2, after M2's last clean reading an hour earlier.
    assert incident.origin.entry_earliest_ns == T0 + 14 * H - 6 * H
    assert incident.origin.entry_latest_ns == T0 + 15 * H
    # The forecast made when M2 alone had seen it: the intake in 3 h, M3 in 6 h, M4 in 11 h.
    assert first_forecast is not None
    for point_id, actual in (("I1", T0 + 18 * H), ("M3", T0 + 21 * H), ("M4", T0 + 26 * H)):
        assert abs(first_forecast[point_id] - actual) <= ETA_TOLERANCE_NS, point_id
    assert incident.id.startswith("inc-")
    assert incident.status is Status.CLOSED


def test_events_tell_one_thread_per_incident() -> None:
    """Opened at M2, confirmed at M3 then M4, receding once all are clean, closed after the quiet time."""
    tracker, events = _run([Spill("Main", 50, start_h=12)])
    kinds = [kind for kind, _ in events]
    assert events[0] == (EventKind.OPENED, "M2")
    assert (EventKind.CONFIRMED, "M3") in events
    assert (EventKind.CONFIRMED, "M4") in events
    assert kinds.index(EventKind.RECEDING) > kinds.index(EventKind.CONFIRMED)
    assert kinds[-1] is EventKind.CLOSED
    assert kinds.count(EventKind.OPENED) == 1
    incident = _only(tracker)
    assert [(e.kind, e.station_id) for e in incident.timeline] == events
    # Closed 12 h (quiet_time) after receding began: M4 clean at 26 + 6 h.
    assert incident.closed_ns == T0 + (32 + 12) * H


def test_a_tributary_spill_entering_the_main_stem() -> None:
    """A release on Trib between T1 and T2 is one incident from T2 into Main, diluted by the confluence."""
    tracker, _ = _run([Spill("Trib", 30, start_h=12, peak=8.0)], hours=30)
    incident = _only(tracker)
    assert [s.station_id for s in incident.in_flow_order()] == ["T2", "M3", "M4"]
    assert [s.peak for s in incident.in_flow_order()] == [8.0, 2.0, 2.0]
    assert incident.origin is not None
    assert (incident.origin.river, incident.origin.downstream) == ("Trib", "T2")
    assert [b.station_id for b in incident.origin.upstream] == ["T1"]
    assert incident.status is Status.CONFIRMED
    assert "M2" not in incident.stations  # above the confluence, never reached


def test_the_forecast_dilutes_at_the_confluence() -> None:
    """Seen at T2 only: the intake and M3 on Main are forecast at background + a quarter of the excess."""
    net = network()
    tracker = IncidentTracker(net)
    for hour in range(3):
        tracker.observe("T2", "nh3n", T0 + hour * H, CLEAN, LIMIT)
    tracker.observe("T2", "nh3n", T0 + 3 * H, 4.2, LIMIT)
    forecast = {f.point_id: f for f in _only(tracker).forecast}
    assert list(forecast) == ["I1", "M3", "M4"]
    assert forecast["M3"].expected_value == pytest.approx(CLEAN + (4.2 - CLEAN) * 0.25)
    assert forecast["M3"].eta_ns == T0 + 3 * H + 5 * H
    assert forecast["I1"].kind == "intake"


def test_decay_lowers_the_forecast_concentration() -> None:
    """With k = 0.1 per hour, M3 five hours below T2 expects the diluted excess times exp(-0.5)."""
    tracker = IncidentTracker(network(), IncidentConfig(decay_per_h={"nh3n": 0.1}))
    tracker.observe("T2", "nh3n", T0, 4.0, LIMIT)
    forecast = {f.point_id: f for f in _only(tracker).forecast}
    assert forecast["M3"].expected_value == pytest.approx(4.0 * 0.25 * 2.718281828459045**-0.5)


def test_two_simultaneous_unrelated_spills_are_two_incidents() -> None:
    """The same item at the same time on Main and on Other: two incidents, each on its river."""
    tracker, _ = _run([Spill("Main", 50, start_h=12), Spill("Other", 10, start_h=12)], hours=30)
    incidents = sorted(tracker.incidents(), key=lambda i: i.origin.river if i.origin else "")
    assert [[s.station_id for s in i.in_flow_order()] for i in incidents] == [
        ["M2", "M3", "M4"],
        ["O1", "O2"],
    ]
    assert len({i.id for i in incidents}) == 2


def test_the_same_item_far_outside_the_window_is_another_incident() -> None:
    """M3 exceeding two days after M2 (6 h apart) does not join M2's incident."""
    tracker = IncidentTracker(network())
    tracker.observe("M2", "nh3n", T0, 3.0, LIMIT)
    tracker.observe("M3", "nh3n", T0 + 48 * H, 3.0, LIMIT)
    assert len(tracker.incidents()) == 2


def test_a_one_station_spike_is_never_confirmed() -> None:
    """One high reading at M2, M3 clean when the plume should have come: unconfirmed, flagged, closed."""
    net = network()
    tracker = IncidentTracker(net)
    events = []
    for row in readings(net, [], hours=48):
        sid, item, time_ns, value, limit = row
        if sid == "M2" and time_ns == T0 + 15 * H:
            value = 9.0
        events += tracker.observe(sid, item, time_ns, value, limit)
    incident = _only(tracker)
    kinds = [e.kind for e in events]
    assert EventKind.CONFIRMED not in kinds
    assert incident.single_station
    assert incident.not_seen_downstream == "M3"
    assert kinds == [EventKind.OPENED, EventKind.UNCONFIRMED, EventKind.RECEDING, EventKind.CLOSED]
    # Receding once M3's window closed (15 h + 6 h travel + 3 h tolerance + 1 h report interval).
    (receding,) = [e for e in events if e.kind is EventKind.RECEDING]
    assert receding.time_ns == T0 + 26 * H


def test_an_upstream_station_joining_moves_the_origin_up() -> None:
    """M2 exceeding for hours, then M1 (6 h above, back from an outage): joined, origin above M1."""
    tracker = IncidentTracker(network())
    for hour in range(6, 13):
        tracker.observe("M2", "nh3n", T0 + hour * H, 3.0, LIMIT)
    events = tracker.observe("M1", "nh3n", T0 + 10 * H, 3.0, LIMIT)
    assert (events[0].kind, events[0].station_id) == (EventKind.CONFIRMED, "M1")
    incident = _only(tracker)
    assert incident.origin is not None
    assert incident.origin.downstream == "M1"
    assert incident.origin.upstream == ()  # M1 is the first station on Main: from the river's top


def test_a_receding_incident_resumes_when_the_item_exceeds_again() -> None:
    """Clean at its only station, then high again before closing: receding, then resumed."""
    tracker = IncidentTracker(network())
    tracker.observe("M2", "nh3n", T0, 3.0, LIMIT)
    assert tracker.observe("M2", "nh3n", T0 + H, CLEAN, LIMIT) == []  # M3 may still see it
    assert tracker.tick(T0 + 11 * H) == []  # M3's window passed, but its readings are not in yet
    # M3 clean after its window: the plume is not coming.
    assert [e.kind for e in tracker.observe("M3", "nh3n", T0 + 11 * H, CLEAN, LIMIT)] == [EventKind.RECEDING]
    assert [e.kind for e in tracker.observe("M2", "nh3n", T0 + 12 * H, 2.0, LIMIT)] == [EventKind.RESUMED]
    assert _only(tracker).status is Status.OPEN


def test_stations_off_the_network_are_ignored() -> None:
    """A reading of a station the network does not know changes nothing."""
    tracker = IncidentTracker(network())
    assert tracker.observe("elsewhere", "nh3n", T0, 9.0, LIMIT) == []
    assert tracker.incidents() == []


def test_state_survives_a_restart() -> None:
    """Stopped mid-incident and restored from JSON, the tracker ends as one that ran through."""
    net = network()
    feed = list(readings(net, [Spill("Main", 50, start_h=12), Spill("Trib", 30, start_h=40)], hours=80))
    straight = IncidentTracker(net)
    straight_events = replay(straight, feed)

    first = IncidentTracker(net)
    events = replay(first, feed[: len(feed) // 3])
    assert any(i.status is Status.CONFIRMED for i in first.incidents())
    saved = json.loads(json.dumps(first.to_json()))
    restored = IncidentTracker.from_json(saved, net)
    events += replay(restored, feed[len(feed) // 3 :])

    assert events == straight_events
    assert restored.to_json() == straight.to_json()
    assert [i.to_json() for i in restored.incidents()] == [i.to_json() for i in straight.incidents()]


def test_a_state_of_another_version_is_refused() -> None:
    """A state file this version did not write is an error, not a silent reset."""
    with pytest.raises(ValueError, match="version"):
        IncidentTracker.from_json({"version": 99}, network())


def test_incident_ids_are_stable() -> None:
    """The id depends on the item, the first station and its time only."""
    one, _ = _run([Spill("Main", 50, start_h=12)], hours=20)
    two, _ = _run([Spill("Main", 50, start_h=12)], hours=30)
    assert _only(one).id == _only(two).id


def test_the_view_lists_stations_in_flow_order_with_times() -> None:
    """to_json names the item, the stations upstream first with first_exceeded_at, origin and forecast."""
    tracker, _ = _run([Spill("Main", 50, start_h=12)], hours=22)
    view = _only(tracker).to_json()
    assert view["item"] == "nh3n"
    assert [(s["station_id"], s["first_exceeded_at"]) for s in view["stations"]] == [
        ("M2", "2027-01-15T23:00:00Z"),
        ("M3", "2027-01-16T05:00:00Z"),
    ]
    assert view["origin"]["river"] == "Main"
    assert view["origin"]["upstream"][0]["station_id"] == "M1"
    assert [f["point_id"] for f in view["forecast"]] == ["M4"]
    assert view["forecast"][0]["eta"] == "2027-01-16T10:00:00Z"
