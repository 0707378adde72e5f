"""Arrival time and expected concentration of the plume's front at every point downstream.

From the incident's front (its most downstream station, where the plume was seen last), along
`RiverNetwork.downstream`: every water-quality station and every point (intake, boundary section)
not yet in the incident, up to the forecast horizon.

- ETA = first exceedance at the front + travel time × `speed_scale`, ± `IncidentConfig.tolerance_s`.
  `speed_scale` is 1 until the plume was seen at two sections on one path; then (with `calibrate`)
  the observed over the expected travel time between the first station and the front, clamped to
  `calibration_bounds` (4-hourly reports blur arrivals by up to 4 h).
- Expected value = background + (peak − background) × dilution × exp(−k t): the front's peak, the
  last clean value there before the incident as background (0 when unknown), the product of the
  confluence factors crossed (config/network.py: `flow_share` of the tributary carrying the plume,
  `1 − flow_share` of every tributary joining the plume's river), first-order decay `k` per hour of
  the item (`IncidentConfig.decay_per_h`) over the travel time. Complete mixing at each confluence
  is assumed (it takes kilometres; an intake on the bank near a mouth may see more).
"""

from __future__ import annotations

import math
from typing import Final

from alerts.incidents.config import IncidentConfig
from alerts.incidents.model import ForecastPoint, Incident, IncidentStation
from alerts.incidents.origin import first_station
from config.network import RiverNetwork


def front_station(incident: Incident) -> IncidentStation:
    """The incident's most downstream station (the latest first exceedance breaks ties)."""
    return min(incident.stations.values(), key=lambda s: (s.outlet_km, -s.first_exceeded_ns, s.station_id))


# A leg must take this many times the two stations' report intervals to calibrate speeds on.
MIN_LEG_INTERVALS: Final = 4


def speed_scale(incident: Incident, network: RiverNetwork, config: IncidentConfig) -> float:
    """Observed over expected travel time from the first station to the front, clamped; 1 if unknown."""
    if not config.calibrate or incident.single_station:
        return 1.0
    first, front = first_station(incident, network), front_station(incident)
    expected = network.travel_time(first.station_id, front.station_id)
    observed = (front.first_exceeded_ns - first.first_exceeded_ns) / 1e9
    if expected is None or expected <= 0 or observed <= 0:
        return 1.0
    # Arrivals are seen at report times: over a leg not much longer than the report intervals the
    # observed time is mostly sampling, and a scale from it would move far ETAs by hours.
    sampling = network.report_interval_s(first.station_id) + network.report_interval_s(front.station_id)
    if expected < MIN_LEG_INTERVALS * sampling:
        return 1.0
    low, high = config.calibration_bounds
    return min(high, max(low, observed / expected))


def forecast(incident: Incident, network: RiverNetwork, config: IncidentConfig) -> tuple[ForecastPoint, ...]:
    """The forecast points of `incident` in flow order, with `incident.speed_scale` applied."""
    front = front_station(incident)
    background = front.background if front.background is not None else 0.0
    excess = max(0.0, front.peak - background)
    decay = config.decay(incident.item)
    horizon_s = config.forecast_horizon.total_seconds()
    points = []
    for hop in network.downstream(front.station_id):
        if hop.point_id in incident.stations:
            continue
        if hop.kind == "station" and not network.is_monitoring(hop.point_id):
            continue  # a hydrology station sees no concentration
        travel = hop.travel_time_s * incident.speed_scale
        if travel > horizon_s:
            break
        value = background + excess * hop.dilution * math.exp(-decay * travel / 3600.0)
        points.append(
            ForecastPoint(
                point_id=hop.point_id,
                kind=hop.kind,
                river=hop.river,
                chainage_km=hop.chainage_km,
                distance_km=hop.distance_km,
                travel_time_s=travel,
                eta_ns=front.first_exceeded_ns + round(travel * 1e9),
                tolerance_s=config.tolerance_s(travel),
                expected_value=value,
            )
        )
    return tuple(points)
