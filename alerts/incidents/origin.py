"""Where the pollutant entered: the origin reach and the entry time, from arrivals and travel times.

The origin is looked for above the incident's first station in flow order (the one with no other
incident station upstream; the earliest if several branches have one). It lies in that station's
reach (`RiverNetwork.reach_of`): between it and the nearest water-quality station on every branch
above. Each of those bounds is *verified* when it was clean when a plume from above it would have
passed it (`pass_ns` = first exceedance − travel time, less the tolerance and the first station's
report interval): it reported a clean value since then and no exceedance of the item (readings come
in event-time order, so its latest clean and latest exceedance times tell). An unverified bound (no
reading since, or exceeding) means the plume may have come from further up. The entry time lies
between the arrival at the first station's latest possible time (its first exceedance: entry right
above it) and its earliest possible arrival (its last clean reading before, else one report interval
before) less the travel time from the top of the reach; the estimate is the middle. Advection only:
a plume that spread out (dispersion) arrives earlier at its front, so the entry time is a rough
estimate.
"""

from __future__ import annotations

from collections.abc import Mapping

from alerts.incidents.config import IncidentConfig
from alerts.incidents.model import Bound, Incident, IncidentStation, Origin
from config.network import RiverNetwork

# (station_id, item) -> (time_ns, value) of the latest clean reading.
LastClean = Mapping[tuple[str, str], tuple[int, float]]
# (station_id, item) -> time_ns of the latest exceedance.
LastExceeded = Mapping[tuple[str, str], int]


def first_station(incident: Incident, network: RiverNetwork) -> IncidentStation:
    """The incident station with no other one upstream of it (the earliest among such)."""
    roots = [
        s
        for s in incident.stations.values()
        if not any(
            o.station_id != s.station_id and network.travel_time(o.station_id, s.station_id) is not None
            for o in incident.stations.values()
        )
    ]
    return min(roots or incident.stations.values(), key=lambda s: (s.first_exceeded_ns, -s.outlet_km))


def estimate_origin(
    incident: Incident,
    network: RiverNetwork,
    last_clean: LastClean,
    last_exceeded: LastExceeded,
    config: IncidentConfig,
) -> Origin:
    """The origin reach of `incident` now, keeping bounds verified before."""
    first = first_station(incident, network)
    reach = network.reach_of(first.station_id)
    before = {b.station_id: b for b in incident.origin.upstream} if incident.origin else {}
    bounds = []
    for station_id in reach.upstream:
        travel = network.travel_time(station_id, first.station_id)
        assert travel is not None
        bound = Bound(station_id, first.first_exceeded_ns - round(travel * 1e9))
        earlier = before.get(station_id)
        if earlier is not None and earlier.verified and earlier.pass_ns == bound.pass_ns:
            bounds.append(earlier)
            continue
        clean = last_clean.get((station_id, incident.item))
        exceeded = last_exceeded.get((station_id, incident.item))
        if clean is not None and clean_since(
            bound, clean_ns=clean[0], exceeded_ns=exceeded, first=first, network=network, config=config
        ):
            bound = Bound(bound.station_id, bound.pass_ns, clean[0])
        bounds.append(bound)
    top_travel_s = max(
        (network.travel_time_from(s.river, s.from_km, first.station_id) or 0.0 for s in reach.segments),
        default=0.0,
    )
    interval_ns = network.report_interval_s(first.station_id) * 1_000_000_000
    arrived_after = (
        first.background_ns if first.background_ns is not None else first.first_exceeded_ns - interval_ns
    )
    return Origin(
        river=reach.river,
        downstream=first.station_id,
        upstream=tuple(bounds),
        segments=reach.segments,
        entry_earliest_ns=min(arrived_after, first.first_exceeded_ns) - round(top_travel_s * 1e9),
        entry_latest_ns=first.first_exceeded_ns,
    )


def clean_since(
    bound: Bound,
    *,
    clean_ns: int,
    exceeded_ns: int | None,
    first: IncidentStation,
    network: RiverNetwork,
    config: IncidentConfig,
) -> bool:
    """Whether the bound was clean from before the plume could have passed it until `clean_ns`."""
    travel = (first.first_exceeded_ns - bound.pass_ns) / 1e9
    before = config.tolerance_s(travel) + network.report_interval_s(first.station_id)
    start = bound.pass_ns - round(before * 1e9)
    return clean_ns >= start and (exceeded_ns is None or exceeded_ns < start)


def verify_bound(
    incident: Incident,
    station_id: str,
    *,
    clean_ns: int,
    exceeded_ns: int | None,
    network: RiverNetwork,
    config: IncidentConfig,
) -> bool:
    """Mark the origin bound `station_id` verified by a clean reading; True if it changed."""
    origin = incident.origin
    if origin is None:
        return False
    first = incident.stations.get(origin.downstream)
    if first is None:
        return False
    changed = False
    bounds = []
    for bound in origin.upstream:
        if (
            bound.station_id == station_id
            and not bound.verified
            and clean_since(
                bound, clean_ns=clean_ns, exceeded_ns=exceeded_ns, first=first, network=network, config=config
            )
        ):
            bounds.append(Bound(bound.station_id, bound.pass_ns, clean_ns))
            changed = True
        else:
            bounds.append(bound)
    if changed:
        incident.origin = Origin(
            origin.river,
            origin.downstream,
            tuple(bounds),
            origin.segments,
            origin.entry_earliest_ns,
            origin.entry_latest_ns,
        )
    return changed
