"""The river network of a registry: loading, each validation error, the demo network, travel times."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.network import NetworkSpec, RiverNetwork
from config.registry import Registry
from tests.helpers import DEMO_REGISTRY, station

BASE: dict[str, Any] = {
    "stations": [
        {"id": "a", "river": "Main", "chainage_km": 10},
        {"id": "b", "river": "Main", "chainage_km": 70},
        {"id": "c", "river": "Main", "chainage_km": 130},
        {"id": "t", "river": "Trib", "chainage_km": 20},
        {"id": "h", "river": "Main", "chainage_km": 70, "kinds": ["hydro"]},
    ],
    "network": {
        "rivers": [
            {
                "name": "Main",
                "length_km": 150,
                "speed_km_h": 6,
                "speeds": [{"from_km": 0, "to_km": 40, "speed_km_h": 12}],
            },
            {"name": "Trib", "length_km": 50, "joins": {"river": "Main", "at_km": 100, "flow_share": 0.2}},
        ],
        "points": [
            {
                "id": "intake",
                "name": "Intake",
                "kind": "intake",
                "river": "Main",
                "chainage_km": 120,
                "district": "D3",
                "receivers": ["op-intake"],
            },
            {
                "id": "border",
                "name": "Border",
                "kind": "boundary",
                "river": "Main",
                "chainage_km": 140,
                "upstream_district": "D3",
                "downstream_district": "Elsewhere",
            },
        ],
        "duties": [
            {
                "river": "Main",
                "from_km": 0,
                "to_km": 80,
                "district": "D1",
                "river_chief": "D1 Main chief",
                "receivers": ["chief-d1"],
            },
            {"river": "Main", "from_km": 80, "to_km": 150, "district": "D3", "receivers": ["chief-d3"]},
            {"river": "Trib", "from_km": 0, "to_km": 50, "district": "D2", "receivers": ["chief-d2"]},
        ],
        "district_receivers": {"D1": ["duty-d1"], "D3": ["duty-d3"], "Elsewhere": ["duty-elsewhere"]},
    },
}


def _registry(tmp_path: Path, document: dict[str, Any]) -> Registry:
    stations = []
    for raw in document["stations"]:
        fields = station(raw["id"], district=f"D-{raw['id']}").model_dump(mode="json", exclude_none=True)
        stations.append({**fields, **raw})
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({**document, "stations": stations}, allow_unicode=True), encoding="utf-8")
    return Registry.load(path)


def _network(tmp_path: Path, document: dict[str, Any] | None = None) -> RiverNetwork:
    network = _registry(tmp_path, document or BASE).network
    assert network is not None
    return network


def test_a_registry_without_a_network_stays_valid(tmp_path: Path) -> None:
    """No network: section, no network; chainage_km on a station is then ignored."""
    document = {"stations": BASE["stations"]}
    registry = _registry(tmp_path, document)
    assert registry.network is None
    assert registry["a"].chainage_km == 10


def test_travel_times_follow_the_reach_speeds(tmp_path: Path) -> None:
    """12 km/h over km 0-40, the river's 6 km/h below; across a confluence the tributary's default."""
    network = _network(tmp_path)
    assert network.travel_time("a", "b") == pytest.approx((30 / 12 + 30 / 6) * 3600)
    assert network.distance_km("a", "c") == 120
    assert network.travel_time("b", "a") is None  # upstream
    # Trib has no speed: the network default, 3.6 km/h, for 30 km, then 30 km of Main at 6 km/h.
    assert network.travel_time("t", "c") == pytest.approx((30 / 3.6 + 30 / 6) * 3600)
    assert network.travel_time("t", "b") is None  # b is above the confluence
    assert network.travel_time("a", "a") == 0


def test_a_travel_time_reach_is_a_speed(tmp_path: Path) -> None:
    """A reach given as a travel time (here 2 h over km 0-40) sets its speed (20 km/h)."""
    document = copy.deepcopy(BASE)
    document["network"]["rivers"][0]["speeds"] = [{"from_km": 0, "to_km": 40, "travel_time": "PT2H"}]
    network = _network(tmp_path, document)
    assert network.travel_time("a", "b") == pytest.approx((30 / 20 + 30 / 6) * 3600)


def test_station_velocities_are_a_fallback_below_configured_reaches(tmp_path: Path) -> None:
    """The velocity a station reports sets the speed below it where no reach is configured."""
    network = _network(tmp_path)
    velocities = {"a": 5.0, "b": 2.0}  # m/s; a's reach (km 0-40) is configured, so only km 40-70 uses 5
    fast = network.with_velocity(velocities.get)
    expected = 30 / 12 + 30 / 18.0  # 5 m/s = 18 km/h from the reach's end to b
    assert fast.travel_time("a", "b") == pytest.approx(expected * 3600)
    assert fast.travel_time("b", "c") == pytest.approx(60 / 7.2 * 3600)  # b's 2 m/s
    assert network.travel_time("b", "c") == pytest.approx(60 / 6 * 3600)  # the original is unchanged
    implausible = network.with_velocity({"b": 40.0}.get)
    assert implausible.travel_time("b", "c") == pytest.approx(60 / 6 * 3600)


def test_downstream_lists_points_in_flow_order_with_dilution(tmp_path: Path) -> None:
    """From the tributary: into Main (× its flow share), the intake, c, the border section."""
    network = _network(tmp_path)
    hops = network.downstream("t")
    assert [(h.point_id, h.kind, h.distance_km) for h in hops] == [
        ("intake", "intake", 50),
        ("c", "station", 60),
        ("border", "boundary", 70),
    ]
    by_id = {h.point_id: h for h in hops}
    assert by_id["c"].dilution == pytest.approx(0.2)
    # From Main above the mouth: the tributary's water dilutes by 1 - 0.2.
    main = {h.point_id: h for h in network.downstream("b")}
    assert list(main) == ["intake", "c", "border"]
    assert main["c"].dilution == pytest.approx(0.8)
    assert "h" not in main  # the hydrology station beside b is not below it


def test_neighbours_and_reaches_cross_confluences(tmp_path: Path) -> None:
    """c's reach runs up Main to b and up the whole tributary to t; hydrology stations do not bound it."""
    network = _network(tmp_path)
    reach = network.reach_of("c")
    assert reach.upstream == ("b", "t")
    assert [(s.river, s.from_km, s.to_km) for s in reach.segments] == [("Main", 70, 130), ("Trib", 20, 50)]
    # b: 60 km at 6 km/h (10 h); t: 30 km at 3.6 km/h and 30 km at 6 km/h (13.3 h).
    assert [h.point_id for h in network.upstream_neighbours("c")] == ["b", "t"]
    upstream = network.upstream_neighbour("c")
    assert upstream is not None
    assert upstream.point_id == "b"  # nearer in time
    below = network.downstream_neighbour("a")
    assert below is not None
    assert below.point_id == "b"
    assert network.downstream_neighbour("c") is None
    top = network.reach_of("a")
    assert top.upstream == ()
    assert [(s.river, s.from_km, s.to_km) for s in top.segments] == [("Main", 0, 10)]


def test_a_point_s_basin_is_the_outlet_its_river_flows_to(tmp_path: Path) -> None:
    """Stations and points on a river and on its tributary share the outlet river's name; a second
    river system has its own; what is not on the network has none."""
    document = copy.deepcopy(BASE)
    document["stations"].append({"id": "o", "river": "Other", "chainage_km": 5})
    document["stations"].append({"id": "off", "river": "Main"})
    document["network"]["rivers"].append({"name": "Other", "length_km": 10})
    network = _network(tmp_path, document)
    assert {network.basin(p) for p in ("a", "c", "t", "h", "intake")} == {"Main"}
    assert network.basin("o") == "Other"
    assert network.basin("off") is None
    assert network.basin("nowhere") is None


def test_responsible_names_districts_chiefs_and_receivers(tmp_path: Path) -> None:
    """A reach's duties and duty rooms; a district's; everyone downstream, intake operators included."""
    network = _network(tmp_path)
    reach = network.responsible(network.reach_of("c"))
    assert reach.districts[:3] == ("D1", "D3", "D2")
    assert reach.river_chiefs == ("D1 Main chief",)
    assert {"chief-d1", "chief-d3", "chief-d2", "duty-d1", "duty-d3"} <= set(reach.receivers)
    assert network.responsible("D1").receivers == ("chief-d1", "duty-d1")
    below = network.responsible_downstream("b")
    assert {"chief-d3", "duty-d3", "op-intake", "duty-elsewhere"} <= set(below.receivers)
    assert "chief-d2" not in below.receivers
    assert network.receiver_names() == {
        "chief-d1",
        "chief-d2",
        "chief-d3",
        "duty-d1",
        "duty-d3",
        "duty-elsewhere",
        "op-intake",
    }


def _broken(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    target: Any = document
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return document


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        pytest.param(
            _broken("network.rivers.0.joins", {"river": "Trib", "at_km": 10}),
            "cycle: Main → Trib → Main",
            id="cycle",
        ),
        pytest.param(
            _broken("network.rivers.1.joins", {"river": "Nile", "at_km": 10}),
            "unknown river 'Nile'",
            id="unknown-river",
        ),
        pytest.param(
            _broken("network.rivers.1.joins", {"river": "Main", "at_km": 151}),
            "past its end",
            id="confluence-past-end",
        ),
        pytest.param(
            _broken("stations.2", {"id": "c", "river": "Main", "chainage_km": 160}),
            "station c at km 160",
            id="station-past-end",
        ),
        pytest.param(
            _broken("stations.3", {"id": "t", "river": "Nile", "chainage_km": 1}),
            "is not in network.rivers",
            id="station-river-unknown",
        ),
        pytest.param(
            _broken("network.rivers.1", {"name": "Main", "length_km": 5}),
            "listed twice",
            id="duplicate-river",
        ),
        pytest.param(
            _broken(
                "network.points.1",
                {"id": "intake", "name": "x", "kind": "other", "river": "Main", "chainage_km": 1},
            ),
            "duplicate point id",
            id="duplicate-point",
        ),
        pytest.param(
            _broken(
                "network.points.1",
                {"id": "a", "name": "x", "kind": "other", "river": "Main", "chainage_km": 1},
            ),
            "also a station id",
            id="point-is-a-station",
        ),
        pytest.param(_broken("network.rivers.0.speed_km_h", -1), "greater than 0", id="negative-speed"),
        pytest.param(
            _broken(
                "network.rivers.0.speeds",
                [{"from_km": 0, "to_km": 50, "speed_km_h": 1}, {"from_km": 40, "to_km": 60, "speed_km_h": 1}],
            ),
            "overlap",
            id="overlapping-reaches",
        ),
        pytest.param(
            _broken(
                "network.points.1",
                {"id": "x", "name": "x", "kind": "boundary", "river": "Main", "chainage_km": 1},
            ),
            "upstream_district and downstream_district",
            id="boundary-sides",
        ),
        pytest.param(
            _broken(
                "network.points.0",
                {"id": "x", "name": "x", "kind": "intake", "river": "Main", "chainage_km": 200},
            ),
            "point x at km 200.* is past the end of Main",
            id="point-past-end",
        ),
        pytest.param(_broken("network.duties.0.river", "Nile"), "unknown river 'Nile'", id="duty-river"),
        pytest.param(
            _broken("network.district_receivers", {"D1": ["Not A Name"]}), "pattern", id="receiver-name"
        ),
        pytest.param(
            _broken("network.rivers.1.joins", {"river": "Main", "at_km": 10, "flow_share": 1.5}),
            "less than 1",
            id="share",
        ),
    ],
)
def test_bad_networks_fail_the_load_naming_the_fix(
    tmp_path: Path, document: dict[str, Any], fragment: str
) -> None:
    """Each fault of topology or positions is a load error that says what is wrong."""
    with pytest.raises(ValueError, match=fragment):
        _registry(tmp_path, document)


def test_the_demo_network_places_every_station_plausibly() -> None:
    """All 32 demo points are on the network, marked illustrative, and 长江's stations run west to east."""
    registry = Registry.load(DEMO_REGISTRY)
    network = registry.network
    assert network is not None
    assert set(network.stations()) == set(registry)
    assert "Illustrative" in (network.spec.note or "")
    main = sorted((s for s in registry.values() if s.river == "长江"), key=lambda s: s.chainage_km or 0)
    assert [s.lon for s in main] == sorted(s.lon for s in main)
    rivers = {r.name for r in network.spec.rivers}
    assert {"长江", "嘉陵江", "乌江", "涪江", "渠江"} <= rivers
    kinds = {p.kind for p in network.spec.points}
    assert kinds == {"intake", "boundary"}


def test_the_demo_network_follows_the_city_rivers() -> None:
    """嘉陵江 and 乌江 reach the main stem; the intakes below the city come after 寸滩, in order."""
    network = Registry.load(DEMO_REGISTRY).network
    assert network is not None
    below = [h.point_id for h in network.downstream("cq-jl-beiwenquan")]
    assert below.index("cq-jl-daxigou") < below.index("cq-cj-cuntan") < below.index("intake-cj-yuzui")
    assert below.index("intake-cj-changshou") < below.index("cq-cj-qingxichang") < below.index("bd-cj-out")
    assert network.downstream_neighbour("cq-wj-mawei") is not None
    assert network.downstream_neighbour("cq-wj-mawei").point_id == "cq-cj-qingxichang"  # type: ignore[union-attr]
    assert network.upstream_neighbour("cq-cj-cuntan") is not None
    assert {h.point_id for h in network.upstream_neighbours("cq-cj-cuntan")} == {
        "cq-cj-fengshouba",
        "cq-jl-daxigou",
    }
    # 北温泉 to 大溪沟: 55 km of 嘉陵江 at 3.6 km/h.
    assert network.travel_time("cq-jl-beiwenquan", "cq-jl-daxigou") == pytest.approx(55 / 3.6 * 3600)
    # 酉水 leaves for 湖南: nothing of the 长江 is below it.
    assert [h.point_id for h in network.downstream("cq-ys-lieye")] == ["bd-ys-out"]
    responsible = network.responsible(network.reach_of("cq-cj-cuntan"))
    assert "江北区" in responsible.districts
    assert network.receiver_names()


def test_a_network_built_in_code_checks_its_stations() -> None:
    """RiverNetwork refuses a station past its river's end when built directly, too."""
    spec = NetworkSpec.model_validate({"rivers": [{"name": "R", "length_km": 10}]})
    with pytest.raises(ValueError, match="past the end of R"):
        RiverNetwork(spec, [station("s", river="R", chainage_km=11)])
