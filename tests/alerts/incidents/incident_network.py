"""A small river network for the incident tests, with round numbers, and a reading generator.

Main (200 km, 10 km/h): M1 km 20, M2 km 80, intake I1 km 110, M3 km 140, M4 km 190; Trib (60 km,
10 km/h) joins Main at km 100 with a quarter of the flow: T1 km 10, T2 km 50; Other (100 km,
10 km/h), an outlet of its own: O1 km 20, O2 km 70. Every station reports hourly, so the travel
time between two stations is (km apart) / 10 hours and a plume is seen within the hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from config.network import NetworkSpec, RiverNetwork
from config.registry import Registry
from tests.helpers import station

H = 3600 * 10**9
# A fixed start (2027-01-15T08:00Z), far from any date a test runs on; nothing compares it to now.
T0 = 1_800_000_000 * 10**9
LIMIT = 1.0
CLEAN = 0.2

POSITIONS = {
    "M1": ("Main", 20.0),
    "M2": ("Main", 80.0),
    "M3": ("Main", 140.0),
    "M4": ("Main", 190.0),
    "T1": ("Trib", 10.0),
    "T2": ("Trib", 50.0),
    "O1": ("Other", 20.0),
    "O2": ("Other", 70.0),
}

SPEC = NetworkSpec.model_validate(
    {
        "rivers": [
            {"name": "Main", "length_km": 200, "speed_km_h": 10},
            {
                "name": "Trib",
                "length_km": 60,
                "speed_km_h": 10,
                "joins": {"river": "Main", "at_km": 100, "flow_share": 0.25},
            },
            {"name": "Other", "length_km": 100, "speed_km_h": 10},
        ],
        "points": [
            {
                "id": "I1",
                "name": "Main intake",
                "kind": "intake",
                "river": "Main",
                "chainage_km": 110,
                "receivers": ["intake-op"],
            },
        ],
    }
)


def network() -> RiverNetwork:
    registry = Registry(
        [
            station(sid, river=river, chainage_km=km, report_interval_s=3600, district=f"D-{sid}")
            for sid, (river, km) in POSITIONS.items()
        ],
        SPEC,
    )
    assert registry.network is not None
    return registry.network


@dataclass(frozen=True)
class Spill:
    """A release at `km` on `river` at hour `start_h`, lasting `hours`, of concentration `peak` at the
    first station below (diluted by `factor` at stations past a confluence)."""

    river: str
    km: float
    start_h: float
    hours: float = 6.0
    peak: float = 4.0


def arrival_h(net: RiverNetwork, spill: Spill, station_id: str) -> float | None:
    """Hour the spill's front reaches the station (10 km/h everywhere), None if it never does."""
    legs = {"Main": None, "Trib": ("Main", 100.0), "Other": None}
    river, km, hours = spill.river, spill.km, spill.start_h
    target_river, target_km = POSITIONS[station_id]
    while True:
        if river == target_river and target_km >= km:
            return hours + (target_km - km) / 10
        nxt = legs[river]
        if nxt is None:
            return None
        length = 60.0 if river == "Trib" else 100.0
        hours += (length - km) / 10
        river, km = nxt


def readings(
    net: RiverNetwork, spills: Iterable[Spill], hours: int, stations: Iterable[str] = tuple(POSITIONS)
) -> Iterator[tuple[str, str, int, float, float]]:
    """Hourly nh3n readings of every station for `hours` hours from T0, in time order."""
    spills = list(spills)
    for hour in range(hours):
        for sid in stations:
            value = CLEAN
            for spill in spills:
                arrival = arrival_h(net, spill, sid)
                if arrival is not None and arrival <= hour < arrival + spill.hours:
                    diluted = spill.peak * (
                        0.25 if spill.river == "Trib" and POSITIONS[sid][0] == "Main" else 1.0
                    )
                    value = max(value, diluted)
            yield sid, "nh3n", T0 + hour * H, value, LIMIT
