"""Spills follow the river network with the tracker's model, and each scenario causes the incidents it states.

The network scenarios (simulators/scenarios/spill-*.yaml, sensor-spike.yaml) are played through
decoding, validation and the incident tracker on the demo registry's network
(tests/simulators/incident_play.py); their `expect_incidents` must be exactly what the tracker
opens. The travel model itself (simulators/spills.py) is checked against `RiverNetwork`.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from pydantic import ValidationError

from alerts.incidents.model import Incident, Status
from config.network import RiverNetwork
from config.registry import Registry, Station
from simulators.effects import Overlay, passages
from simulators.scenario import SCENARIO_DIR, PollutionEvent, Scenario, SpillOrigin, load_scenario
from simulators.simulator import Simulator
from simulators.spills import along, arrivals, origin_position, spill_arrivals
from tests.simulators.incident_play import Played, play, since_start

NETWORK_SCENARIOS = ["spill-mainstem", "spill-tributary", "spill-two-rivers", "sensor-spike"]
# The slug's front ramps up over its first 15 % (simulators/effects.py): a reading may first exceed then.
_RAMP = 0.15


@pytest.fixture(scope="module")
def network(demo_registry: Registry) -> RiverNetwork:
    assert demo_registry.network is not None
    return demo_registry.network


def _event(**fields: object) -> PollutionEvent:
    return PollutionEvent.model_validate({"type": "pollution", "at": "1h", "duration": "2h", **fields})


# --- the travel model -----------------------------------------------------------------------------
def test_arrivals_take_the_networks_travel_time_from_the_origin(network: RiverNetwork) -> None:
    """Each station below an origin on a river is reached after `travel_time_from` that place."""
    found = arrivals(network, "长江", 200.0, {"nh3n": 1.0}, {})
    assert [a.station_id for a in found][:3] == ["cq-cj-fengshouba", "cq-cj-cuntan", "cq-cj-qingxichang"]
    for arrival in found:
        expected = network.travel_time_from("长江", 200.0, arrival.station_id)
        assert expected is not None
        assert arrival.travel_time_s == pytest.approx(expected)
    assert [a.travel_time_s for a in found] == sorted(a.travel_time_s for a in found)


def test_arrivals_from_a_station_match_the_networks_hops(network: RiverNetwork) -> None:
    """From a station's own place, the station sees the slug at once and the rest as `downstream` says."""
    position = network.position("cq-jl-daxigou")
    found = arrivals(network, position.river, position.chainage_km, {"nh3n": 2.0}, {})
    assert (found[0].station_id, found[0].travel_time_s, found[0].dilution) == ("cq-jl-daxigou", 0.0, 1.0)
    hops = [h for h in network.downstream("cq-jl-daxigou") if network.is_monitoring(h.point_id)]
    assert [a.station_id for a in found[1:]] == [h.point_id for h in hops]
    for arrival, hop in zip(found[1:], hops, strict=True):
        assert arrival.travel_time_s == pytest.approx(hop.travel_time_s)
        assert arrival.dilution == pytest.approx(hop.dilution)
        assert arrival.deltas["nh3n"] == pytest.approx(2.0 * hop.dilution)


def test_a_tributary_spill_is_diluted_by_its_flow_share_in_the_main_stem(network: RiverNetwork) -> None:
    """Crossing into the Yangtze a Jialing slug keeps the Jialing's share; lower mouths dilute it more."""
    by_id = {a.station_id: a for a in arrivals(network, "嘉陵江", 120.0, {"nh3n": 1.0}, {})}
    assert by_id["cq-jl-daxigou"].dilution == 1.0
    assert by_id["cq-cj-cuntan"].dilution == pytest.approx(0.2)
    # 御临河 (0.004), 龙溪河 (0.006) and 乌江 (0.13) join between 寸滩 and 清溪场.
    assert by_id["cq-cj-qingxichang"].dilution == pytest.approx(0.2 * 0.996 * 0.994 * 0.87)
    assert "cq-cj-fengshouba" not in by_id  # upstream of the mouth


def test_decay_is_first_order_over_the_travel_time(network: RiverNetwork) -> None:
    """With k per hour, the delta at a station is delta × dilution × exp(−k t)."""
    found = arrivals(network, "长江", 200.0, {"nh3n": 3.0, "tp": 0.5}, {"nh3n": 0.01})
    for arrival in found:
        hours = arrival.travel_time_s / 3600
        assert arrival.deltas["nh3n"] == pytest.approx(3.0 * arrival.dilution * math.exp(-0.01 * hours))
        assert arrival.deltas["tp"] == pytest.approx(0.5 * arrival.dilution)


def test_between_two_stations_splits_the_river_distance(network: RiverNetwork) -> None:
    """An origin `fraction` of the way from X to Y: travel X→origin plus origin→Y is X→Y."""
    for upper, lower, fraction in [
        ("cq-cj-zhutuo", "cq-cj-fengshouba", 0.5),
        ("cq-jl-daxigou", "cq-cj-cuntan", 0.5),  # across the 嘉陵江 mouth: 3 km then 7 km
        ("cq-wj-wanmu", "cq-wj-wulong", 0.7),
    ]:
        origin = SpillOrigin(between=(upper, lower), fraction=fraction)
        river, km = origin_position(origin, network)
        distance = network.distance_km(upper, lower)
        assert distance is not None
        top = network.position(upper)
        assert (river, km) == along(network, top.river, top.chainage_km, distance * fraction)
        to_lower = network.travel_time_from(river, km, lower)
        from_upper = network.travel_time_from(top.river, top.chainage_km, lower)
        assert to_lower is not None
        assert from_upper is not None
        assert 0 < to_lower < from_upper
    assert origin_position(SpillOrigin(between=("cq-jl-daxigou", "cq-cj-cuntan")), network) == ("长江", 252.0)


def test_an_origin_off_the_network_is_refused_by_name(demo_registry: Registry) -> None:
    """An unknown river, a place past a river's end or stations in the wrong order fail at construction."""
    cases = [
        ({"river": "黄河", "chainage_km": 10}, "not in the registry's network"),
        ({"river": "嘉陵江", "chainage_km": 400}, "past the end of 嘉陵江"),
        ({"between": ["cq-jl-daxigou", "cq-jl-jinzi"]}, "not downstream of cq-jl-daxigou"),
        ({"between": ["cq-wj-wulong", "cq-jl-daxigou"]}, "not downstream of cq-wj-wulong"),
    ]
    for origin, message in cases:
        scenario = Scenario(name="bad", events=[_event(origin=origin, deltas={"nh3n": 1.0})])
        with pytest.raises(ValueError, match=message):
            Simulator(demo_registry, scenario)


def test_the_network_form_needs_a_network(demo_stations: list[Station], network: RiverNetwork) -> None:
    """Bare stations without `network=` cannot place an origin; with the registry's network they can."""
    scenario = Scenario(
        name="s", events=[_event(origin={"river": "长江", "chainage_km": 200}, deltas={"nh3n": 1.0})]
    )
    with pytest.raises(ValueError, match="needs a registry with a network"):
        Simulator(demo_stations, scenario)
    assert Simulator(demo_stations, scenario, network=network).network is network


def test_the_network_form_refuses_the_legacy_path_keys() -> None:
    """`origin` with a per-leg dilution, speed or travel time, or two path forms at once, is a load error."""
    origin = {"river": "长江", "chainage_km": 200}
    for extra in ({"dilution": 0.5}, {"velocity_m_s": 2.0}, {"travel_time": "1h"}, {"flows": "east"}):
        with pytest.raises(ValidationError, match="network form"):
            _event(origin=origin, deltas={"nh3n": 1.0}, **extra)
    with pytest.raises(ValidationError, match="give one of origin"):
        _event(origin=origin, stations=["cq-cj-cuntan"], deltas={"nh3n": 1.0})
    with pytest.raises(ValidationError, match="decay_per_h goes with origin"):
        _event(stations=["cq-cj-cuntan"], deltas={"nh3n": 1.0}, decay_per_h={"nh3n": 0.1})
    with pytest.raises(ValidationError, match="river and chainage_km, or between"):
        SpillOrigin.model_validate({"river": "长江", "chainage_km": 1, "between": ["a", "b"]})
    with pytest.raises(ValidationError, match="both river and chainage_km"):
        SpillOrigin.model_validate({"river": "长江"})


def test_the_overlay_adds_the_slug_when_the_network_says(
    demo_registry: Registry, network: RiverNetwork
) -> None:
    """A station's truth gains delta × dilution on the plateau, nothing before its arrival."""
    event = _event(
        origin={"between": ["cq-jl-beiwenquan", "cq-jl-daxigou"]}, deltas={"nh3n": 4.0}, spread=0.0
    )
    by_station = dict(passages(event, demo_registry, network))
    for arrival in spill_arrivals(event, network):
        passage = by_station[arrival.station_id]
        assert passage.arrival_s == pytest.approx(3600 + arrival.travel_time_s)
        assert passage.length_s == 2 * 3600
    overlay = Overlay(Scenario(name="s", events=[event]), demo_registry, 0.0, network)
    cuntan = by_station["cq-cj-cuntan"]
    values = {"nh3n": 0.3}
    overlay.pollute("cq-cj-cuntan", cuntan.arrival_s - 1, values)
    assert values == {"nh3n": 0.3}
    overlay.pollute("cq-cj-cuntan", cuntan.arrival_s + cuntan.length_s / 2, values)
    assert values["nh3n"] == pytest.approx(0.3 + 4.0 * 0.2)
    upstream = {"nh3n": 0.3}
    overlay.pollute("cq-jl-beiwenquan", cuntan.arrival_s + cuntan.length_s / 2, upstream)
    assert upstream == {"nh3n": 0.3}


def test_a_spike_is_one_stations_readings_not_the_water(demo_registry: Registry) -> None:
    """A spike raises the station's reported values while active and leaves the truth everywhere alone."""
    scenario = Scenario.model_validate(
        {
            "name": "s",
            "events": [
                {
                    "type": "spike",
                    "station": "cq-cj-fengshouba",
                    "deltas": {"nh3n": 2.0},
                    "at": "1h",
                    "duration": "1h",
                }
            ],
        }
    )
    overlay = Overlay(scenario, demo_registry, 0.0)
    truth = {"nh3n": 0.25, "ph": 7.5}
    during = overlay.measure("cq-cj-fengshouba", 5400, lambda _: dict(truth))
    assert during["nh3n"] == (2.25, "N")
    assert during["ph"] == (7.5, "N")
    assert overlay.measure("cq-cj-fengshouba", 7200, lambda _: dict(truth))["nh3n"] == (0.25, "N")
    assert overlay.measure("cq-cj-cuntan", 5400, lambda _: dict(truth))["nh3n"] == (0.25, "N")
    values = dict(truth)
    overlay.pollute("cq-cj-fengshouba", 5400, values)
    assert values == truth
    with pytest.raises(ValidationError, match="a spike needs a duration"):
        Scenario.model_validate(
            {"name": "s", "events": [{"type": "spike", "station": "cq-cj-cuntan", "deltas": {"nh3n": 1.0}}]}
        )


def test_expected_incidents_are_checked_when_loaded(demo_stations: list[Station]) -> None:
    """The first station is the origin's downstream one; names and items must exist."""
    origin = {"river": "长江", "upstream": ["cq-cj-zhutuo"], "downstream": "cq-cj-fengshouba"}
    with pytest.raises(ValidationError, match="origin reach's downstream"):
        Scenario.model_validate(
            {
                "name": "s",
                "expect_incidents": [{"item": "nh3n", "origin": origin, "stations": ["cq-cj-cuntan"]}],
            }
        )
    with pytest.raises(ValidationError, match="one-station incident"):
        Scenario.model_validate(
            {
                "name": "s",
                "expect_incidents": [
                    {
                        "item": "nh3n",
                        "origin": origin,
                        "stations": ["cq-cj-fengshouba", "cq-cj-cuntan"],
                        "not_seen_downstream": "cq-cj-cuntan",
                    }
                ],
            }
        )
    unknown = Scenario.model_validate(
        {
            "name": "s",
            "expect_incidents": [
                {
                    "item": "nh3n",
                    "origin": {**origin, "upstream": ["cq-nowhere"]},
                    "stations": ["cq-cj-fengshouba"],
                }
            ],
        }
    )
    with pytest.raises(ValueError, match="cq-nowhere"):
        Simulator(demo_stations, unknown)
    bad_item = Scenario.model_validate(
        {
            "name": "s",
            "expect_incidents": [{"item": "nh4", "origin": origin, "stations": ["cq-cj-fengshouba"]}],
        }
    )
    with pytest.raises(ValueError, match="unknown parameters: nh4"):
        Simulator(demo_stations, bad_item)


# --- the scenarios through the tracker ------------------------------------------------------------
@pytest.fixture(scope="module", params=NETWORK_SCENARIOS)
def played(request: pytest.FixtureRequest) -> Played:
    scenario = load_scenario(SCENARIO_DIR / f"{request.param}.yaml")
    assert scenario.length is not None
    return play(request.param, scenario.length)


def _matching(played: Played) -> list[tuple[Incident, int]]:
    """Each stated incident with the tracker's one of the same item and first station (index)."""
    stated = played.scenario.expect_incidents
    assert stated is not None
    found = played.incidents()
    by_first = {(i.item, i.in_flow_order()[0].station_id): i for i in found}
    assert len(found) == len(stated), [i.to_json()["stations"] for i in found]
    pairs = []
    for index, expected in enumerate(stated):
        incident = by_first.get((expected.item, expected.stations[0]))
        assert incident is not None, (expected, sorted(by_first))
        pairs.append((incident, index))
    return pairs


def test_each_scenario_opens_exactly_its_stated_incidents(played: Played) -> None:
    """As many incidents as stated, each with its item and stations in arrival order, first in time."""
    stated = played.scenario.expect_incidents
    assert stated is not None
    for incident, index in _matching(played):
        expected = stated[index]
        order = incident.in_flow_order()
        assert [s.station_id for s in order] == expected.stations
        firsts = [s.first_exceeded_ns for s in order]
        assert firsts == sorted(firsts), "arrival order is flow order"
        if expected.within is not None:
            assert since_start(firsts[0]) <= expected.within


def test_each_incident_names_the_stated_origin_reach(played: Played) -> None:
    """Origin river, first station and the upstream bounds (all verified clean) are the stated ones."""
    stated = played.scenario.expect_incidents
    assert stated is not None
    releases = [e.at for e in played.scenario.events if isinstance(e, PollutionEvent)]
    for incident, index in _matching(played):
        expected, origin = stated[index], incident.origin
        assert origin is not None
        assert (origin.river, origin.downstream) == (expected.origin.river, expected.origin.downstream)
        assert sorted(b.station_id for b in origin.upstream) == sorted(expected.origin.upstream)
        assert all(b.verified for b in origin.upstream), origin.to_json()
        if len(expected.stations) > 1:
            # The entry time window holds the moment a spill was released.
            window = (since_start(origin.entry_earliest_ns), since_start(origin.entry_latest_ns))
            assert any(window[0] <= at <= window[1] for at in releases), (window, releases)


def test_forecast_arrivals_come_true_within_the_stated_tolerance(played: Played) -> None:
    """Each later station was forecast before it exceeded, within `eta_tolerance` of its first exceedance."""
    stated = played.scenario.expect_incidents
    assert stated is not None
    for incident, index in _matching(played):
        expected = stated[index]
        for station_id in expected.stations[1:]:
            eta = played.eta_before_join.get((incident.id, station_id))
            assert eta is not None, f"{station_id} was never forecast by {incident.id}"
            first = incident.stations[station_id].first_exceeded_ns
            assert abs(first - eta) <= expected.eta_tolerance.total_seconds() * 1e9, (
                station_id,
                since_start(eta),
                since_start(first),
            )


def test_status_tells_a_spill_from_a_sensor_fault(played: Played) -> None:
    """A spill seen at several sections is confirmed; a one-station spike is flagged not seen downstream."""
    stated = played.scenario.expect_incidents
    assert stated is not None
    for incident, index in _matching(played):
        expected = stated[index]
        if len(expected.stations) > 1:
            assert incident.status is Status.CONFIRMED
            assert incident.not_seen_downstream is None
        else:
            assert incident.single_station
            assert incident.status is not Status.CONFIRMED
            assert incident.not_seen_downstream == expected.not_seen_downstream


def test_stations_first_exceed_when_the_spill_arrives(played: Played, network: RiverNetwork) -> None:
    """A station first exceeds after the first spill's network arrival there, within a report and the ramp."""
    interval = played.scenario.report_interval
    assert interval is not None
    first_slug: dict[str, tuple[timedelta, timedelta]] = {}  # station -> (arrival, ramp) of the earliest
    for event in played.scenario.events:
        if not isinstance(event, PollutionEvent):
            continue
        assert event.duration is not None
        for k, arrival in enumerate(spill_arrivals(event, network)):
            arrived = event.at + timedelta(seconds=arrival.travel_time_s)
            ramp = event.duration * (1 + event.spread) ** k * _RAMP
            if arrival.station_id not in first_slug or arrived < first_slug[arrival.station_id][0]:
                first_slug[arrival.station_id] = (arrived, ramp)
    for incident in played.incidents():
        for station in incident.stations.values():
            if station.station_id not in first_slug:
                continue  # a sensor fault: no slug
            arrived, ramp = first_slug[station.station_id]
            first = since_start(station.first_exceeded_ns)
            assert arrived <= first <= arrived + interval + ramp, (station.station_id, arrived, first)


def test_the_network_scenarios_are_bounded() -> None:
    """Every network scenario states its incidents and a length of at most three simulated days."""
    for name in NETWORK_SCENARIOS:
        scenario = load_scenario(SCENARIO_DIR / f"{name}.yaml")
        assert scenario.length is not None
        assert scenario.length <= timedelta(days=3)
        assert scenario.expect_incidents
