"""Spills along the river network: where one enters, and when and how strong it reaches each station.

The same model as the incident tracker's forecast (alerts/incidents/forecast.py), from the same
`RiverNetwork` (config/network.py): the slug's front reaches a water-quality station below the
origin after the network's travel time from the origin (configured reach speeds, the river's
speed, the network's default), crossing confluences into the receiving river; its amplitude there
is the deltas times the network's dilution (the product of the confluence factors crossed: the
carrying tributary's `flow_share`, `1 - flow_share` of each tributary joining below the origin)
times first-order decay exp(-k t) per item. No velocity readings are used: the simulator plays a
scenario, it does not read the daemon's stations.

An origin is a place on a river (`river` + `chainage_km`), or a share (`fraction`, half by
default) of the river distance from one station down to another ("between stations X and Y").
A station at the origin's own place sees the slug at once, undiluted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from config.network import Point, RiverNetwork
from simulators.scenario import PollutionEvent, SpillOrigin

# Id of the origin placed on a copy of the network; suffixed if a station or point already has it.
_ORIGIN_ID: Final = "sim-spill-origin"


@dataclass(frozen=True, slots=True)
class Arrival:
    """A spill as one water-quality station below its origin sees it."""

    station_id: str
    distance_km: float
    travel_time_s: float  # from the origin, along the network
    dilution: float  # the confluence factors crossed, 1 where none is known
    deltas: Mapping[str, float]  # the event's deltas times dilution and decay over the travel time


@dataclass(frozen=True, slots=True)
class _Placed:
    """A station as the network knows it (config.network.StationLike), to rebuild the network."""

    id: str
    river: str
    district: str
    kinds: tuple[str, ...]
    chainage_km: float | None
    report_interval_s: int


def origin_position(origin: SpillOrigin, network: RiverNetwork) -> tuple[str, float]:
    """(river, chainage km) of the origin; ValueError naming the fix when it is not on the network."""
    if origin.between is None:
        assert origin.river is not None  # the model requires both
        assert origin.chainage_km is not None
        _check_on_network(network, origin.river, origin.chainage_km)
        return origin.river, origin.chainage_km
    upper, lower = origin.between
    for station_id in (upper, lower):
        if station_id not in network:
            raise ValueError(f"spill origin: station {station_id} is not on the network (no chainage_km)")
    distance = network.distance_km(upper, lower)
    if distance is None or distance <= 0:
        raise ValueError(f"spill origin: {lower} is not downstream of {upper}; name the upstream one first")
    start = network.position(upper)
    return along(network, start.river, start.chainage_km, distance * origin.fraction)


def along(network: RiverNetwork, river: str, km: float, distance_km: float) -> tuple[str, float]:
    """The place `distance_km` of river below `km` on `river`, crossing confluences."""
    rivers = {r.name: r for r in network.spec.rivers}
    left = distance_km
    while True:
        current = rivers[river]
        if km + left <= current.length_km or current.joins is None:
            return river, min(km + left, current.length_km)
        left -= current.length_km - km
        river, km = current.joins.river, current.joins.at_km


def arrivals(
    network: RiverNetwork,
    river: str,
    km: float,
    deltas: Mapping[str, float],
    decay_per_h: Mapping[str, float],
) -> list[Arrival]:
    """Every water-quality station at or below `km` on `river`, in flow order, with its slug."""
    _check_on_network(network, river, km)
    here = [
        s
        for s in network.stations()
        if network.is_monitoring(s)
        and network.position(s).river == river
        and network.position(s).chainage_km == km
    ]
    out = [Arrival(s, 0.0, 0.0, 1.0, dict(deltas)) for s in sorted(here)]
    placed, point_id = _with_origin(network, river, km)
    for hop in placed.downstream(point_id):
        if hop.kind != "station" or not network.is_monitoring(hop.point_id) or hop.point_id in here:
            continue
        hours = hop.travel_time_s / 3600.0
        scaled = {
            code: delta * hop.dilution * math.exp(-decay_per_h.get(code, 0.0) * hours)
            for code, delta in deltas.items()
        }
        out.append(Arrival(hop.point_id, hop.distance_km, hop.travel_time_s, hop.dilution, scaled))
    return out


def spill_arrivals(event: PollutionEvent, network: RiverNetwork) -> list[Arrival]:
    """The stations a network-form pollution event (`origin:`) reaches, in flow order."""
    assert event.origin is not None  # only the network form has one
    river, km = origin_position(event.origin, network)
    return arrivals(network, river, km, event.deltas, event.decay_per_h)


def _check_on_network(network: RiverNetwork, river: str, km: float) -> None:
    rivers = {r.name: r for r in network.spec.rivers}
    if river not in rivers:
        raise ValueError(f"spill origin: river {river!r} is not in the registry's network.rivers")
    if km > rivers[river].length_km:
        raise ValueError(
            f"spill origin: km {km} is past the end of {river} (length_km {rivers[river].length_km})"
        )


def _with_origin(network: RiverNetwork, river: str, km: float) -> tuple[RiverNetwork, str]:
    """A copy of `network` with the origin as a point, so that `downstream` answers for it.

    config/network.py answers `downstream` for a point id only; placing the origin as one keeps the
    travel times and dilutions exactly the network's own.
    """
    point_id = _ORIGIN_ID
    while point_id in network:
        point_id += "-x"
    point = Point(id=point_id, name="spill origin (simulator)", kind="other", river=river, chainage_km=km)
    spec = network.spec.model_copy(update={"points": (*network.spec.points, point)})
    stations = [
        _Placed(
            s,
            network.position(s).river,
            "",
            ("water",) if network.is_monitoring(s) else ("hydro",),
            network.position(s).chainage_km,
            network.report_interval_s(s),
        )
        for s in network.stations()
    ]
    return RiverNetwork(spec, stations), point_id
