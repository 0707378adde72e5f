"""The incident tracker: exceedances in event-time order in, incident changes out. Pure.

    tracker = IncidentTracker(registry.network, IncidentConfig())
    events = tracker.observe("cq-jl-beiwenquan", "nh3n", time_ns, value=2.4, limit=0.5)
    events += tracker.tick(now_ns)

Feed it every valid (or T, over range) reading of the items that have an upper limit (`max`
items of the standard: NH3-N, COD, TP...), with the station's target-class limit: a value above
it is an exceedance, one at or under it is clean. Clean readings cost one dict write (the latest
clean time and value per station and item, for the origin's bounds and the receding test) plus a
look at the open incidents of that item, which are few. Readings of stations not on the network
(or measuring no water quality) are ignored.

An exceedance joins the open incident of the same item that has a station up- or downstream of it
whose first exceedance, moved by the travel time between them, falls within the window: ±
`tolerance_s(travel time)`, widened by the report interval of each station (a station first sees
a plume up to one interval after it arrived) and by how long the other station has been exceeding
(a long release keeps arriving). The best-fitting incident wins; without one, a new incident
opens. A station already in an open incident updates it (peak, last exceedance).

Status: open → confirmed (another section joined) → receding (every station seen reported clean
after its last exceedance, and the next section below reported clean after its arrival window
passed: the plume is no longer seen nor expected) → closed (receding for `quiet_time`, or no exceedance for
`stale_after`). A receding incident that exceeds again
resumes. A one-station incident whose next section below reported clean after the plume should
have arrived, and the window then passed, gets `not_seen_downstream` (event `unconfirmed`): it
is never confirmed by itself, and may be a data problem rather than a spill.

`observe` and `tick` return the events of the change (`model.EventKind`), each also kept in the
incident's timeline. `to_json()` / `from_json()` carry the whole state across a restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, Final

from alerts.incidents.config import IncidentConfig
from alerts.incidents.forecast import forecast, front_station, speed_scale
from alerts.incidents.model import (
    EventKind,
    Incident,
    IncidentEvent,
    IncidentStation,
    Status,
    incident_from_state,
    incident_id,
)
from alerts.incidents.origin import estimate_origin, verify_bound
from config.network import RiverNetwork

STATE_VERSION: Final = 1
_NS: Final = 1_000_000_000
# Forecast ETAs compared to this many seconds when deciding whether the forecast changed.
_ETA_RESOLUTION_S: Final = 60


class IncidentTracker:
    """Open incidents, the last closed ones, and the latest clean reading per station and item."""

    def __init__(self, network: RiverNetwork, config: IncidentConfig | None = None) -> None:
        self.network = network
        self.config = config or IncidentConfig()
        self._open: dict[str, Incident] = {}
        self._closed: deque[Incident] = deque(maxlen=self.config.max_closed or None)
        self._member: dict[tuple[str, str], str] = {}  # (station, item) -> open incident id
        self._last_clean: dict[tuple[str, str], tuple[int, float]] = {}
        self._last_exceeded: dict[tuple[str, str], int] = {}
        self._now = 0

    # --- feeding ----------------------------------------------------------------------------------
    def observe(
        self, station_id: str, item: str, time_ns: int, value: float, limit: float
    ) -> list[IncidentEvent]:
        """One valid reading of `item` with the station's limit; the incident changes it caused."""
        if not self.network.is_monitoring(station_id):
            return []
        if value > limit:
            key = (station_id, item)
            self._last_exceeded[key] = max(time_ns, self._last_exceeded.get(key, time_ns))
            events = self._exceeded(station_id, item, time_ns, value, limit)
        else:
            events = self._clean(station_id, item, time_ns, value)
        return events + self.tick(time_ns)

    def tick(self, now_ns: int) -> list[IncidentEvent]:
        """Advance to `now_ns`: flag one-station incidents not seen downstream, close quiet ones."""
        self._now = max(self._now, now_ns)
        events: list[IncidentEvent] = []
        for incident in list(self._open.values()):
            if (
                incident.single_station
                and incident.watch is not None
                and incident.not_seen_downstream is None
            ):
                window = self._window(next(iter(incident.stations.values())), incident.watch)
                if incident.watch_clean_ns is not None and window is not None and self._now > window[1]:
                    incident.not_seen_downstream = incident.watch
                    events.append(self._event(incident, EventKind.UNCONFIRMED, self._now, incident.watch))
            if (
                incident.status is not Status.RECEDING
                and all(s.cleared_ns is not None for s in incident.stations.values())
                and self._now > self._expected_until(incident)
                and self._next_section_clean_past_window(incident)
            ):
                incident.status = Status.RECEDING
                incident.receding_since_ns = self._now
                events.append(self._event(incident, EventKind.RECEDING, self._now))
            if self._should_close(incident):
                incident.status = Status.CLOSED
                incident.closed_ns = self._now
                events.append(self._event(incident, EventKind.CLOSED, self._now))
                self._close(incident)
        return events

    # --- reading ----------------------------------------------------------------------------------
    def incidents(self, *, include_closed: bool = True) -> list[Incident]:
        """Open incidents, then (optionally) the closed ones kept, newest first."""
        closed = list(reversed(self._closed)) if include_closed else []
        return [*self._open.values(), *closed]

    def get(self, incident_id: str) -> Incident | None:
        return self._open.get(incident_id) or next((i for i in self._closed if i.id == incident_id), None)

    # --- state ------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The whole state, exactly (times as int ns)."""
        return {
            "version": STATE_VERSION,
            "now_ns": self._now,
            "open": [i.to_state() for i in self._open.values()],
            "closed": [i.to_state() for i in self._closed],
            "last_clean": [[s, item, t, v] for (s, item), (t, v) in self._last_clean.items()],
            "last_exceeded": [[s, item, t] for (s, item), t in self._last_exceeded.items()],
        }

    @classmethod
    def from_json(
        cls, data: dict[str, Any], network: RiverNetwork, config: IncidentConfig | None = None
    ) -> IncidentTracker:
        """The tracker `to_json` saved, on (a possibly reloaded) `network`."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"incident state version {data.get('version')!r}, expected {STATE_VERSION}")
        tracker = cls(network, config)
        tracker._now = data["now_ns"]
        for raw in data["open"]:
            incident = incident_from_state(raw)
            tracker._open[incident.id] = incident
            for station_id in incident.stations:
                tracker._member[(station_id, incident.item)] = incident.id
        tracker._closed.extend(incident_from_state(raw) for raw in data["closed"])
        tracker._last_clean = {(s, item): (t, v) for s, item, t, v in data["last_clean"]}
        tracker._last_exceeded = {(s, item): t for s, item, t in data["last_exceeded"]}
        return tracker

    # --- internals --------------------------------------------------------------------------------
    def _exceeded(
        self, station_id: str, item: str, time_ns: int, value: float, limit: float
    ) -> list[IncidentEvent]:
        member = self._member.get((station_id, item))
        if member is not None:
            return self._again(self._open[member], station_id, time_ns, value)
        station = self._station(station_id, item, time_ns, value, limit)
        joined = self._best_fit(station_id, item, time_ns)
        if joined is None:
            incident = Incident(
                id=incident_id(item, station_id, time_ns),
                item=item,
                opened_ns=time_ns,
                updated_ns=time_ns,
                stations={station_id: station},
            )
            below = self.network.downstream_neighbour(station_id)
            incident.watch = None if below is None else below.point_id
            self._open[incident.id] = incident
            self._member[(station_id, item)] = incident.id
            self._update_model(incident)
            return [self._event(incident, EventKind.OPENED, time_ns, station_id)]
        joined.stations[station_id] = station
        self._member[(station_id, item)] = joined.id
        joined.status = Status.CONFIRMED
        joined.receding_since_ns = None
        joined.updated_ns = max(joined.updated_ns, time_ns)
        events = [self._event(joined, EventKind.CONFIRMED, time_ns, station_id)]
        if self._update_model(joined):
            events.append(self._event(joined, EventKind.FORECAST_UPDATED, time_ns))
        return events

    def _again(self, incident: Incident, station_id: str, time_ns: int, value: float) -> list[IncidentEvent]:
        station = incident.stations[station_id]
        station.last_exceeded_ns = max(station.last_exceeded_ns, time_ns)
        station.cleared_ns = None
        incident.updated_ns = max(incident.updated_ns, time_ns)
        events = []
        if incident.status is Status.RECEDING:
            incident.status = Status.OPEN if incident.single_station else Status.CONFIRMED
            incident.receding_since_ns = None
            events.append(self._event(incident, EventKind.RESUMED, time_ns, station_id))
        if value > station.peak:
            station.peak, station.peak_ns = value, time_ns
            incident.forecast = forecast(incident, self.network, self.config)  # values only: ETAs unchanged
        return events

    def _clean(self, station_id: str, item: str, time_ns: int, value: float) -> list[IncidentEvent]:
        key = (station_id, item)
        previous = self._last_clean.get(key)
        if previous is None or previous[0] <= time_ns:
            self._last_clean[key] = (time_ns, value)
        events: list[IncidentEvent] = []
        for incident in self._open.values():
            if incident.item != item:
                continue
            station = incident.stations.get(station_id)
            if station is not None:
                if station.cleared_ns is None and time_ns > station.last_exceeded_ns:
                    station.cleared_ns = time_ns  # receding is decided in tick
                continue
            exceeded = self._last_exceeded.get(key)
            verify_bound(
                incident,
                station_id,
                clean_ns=time_ns,
                exceeded_ns=exceeded,
                network=self.network,
                config=self.config,
            )
            if incident.watch == station_id and incident.single_station and incident.watch_clean_ns is None:
                only = next(iter(incident.stations.values()))
                travel = self._signed_travel_ns(only.station_id, station_id)
                window = self._window(only, station_id)
                if (
                    travel is not None
                    and window is not None
                    and only.first_exceeded_ns + travel <= time_ns <= window[1]
                ):
                    incident.watch_clean_ns = time_ns
        return events

    def _station(
        self, station_id: str, item: str, time_ns: int, value: float, limit: float
    ) -> IncidentStation:
        position = self.network.position(station_id)
        clean = self._last_clean.get((station_id, item))
        return IncidentStation(
            station_id=station_id,
            river=position.river,
            chainage_km=position.chainage_km,
            outlet_km=self.network.outlet_distance_km(station_id),
            limit=limit,
            first_exceeded_ns=time_ns,
            last_exceeded_ns=time_ns,
            peak=value,
            peak_ns=time_ns,
            background=None if clean is None else clean[1],
            background_ns=None if clean is None else clean[0],
        )

    def _best_fit(self, station_id: str, item: str, time_ns: int) -> Incident | None:
        best: tuple[float, Incident] | None = None
        for incident in self._open.values():
            if incident.item != item:
                continue
            for other in incident.stations.values():
                travel = self._signed_travel_ns(other.station_id, station_id)
                window = self._window(other, station_id)
                if travel is None or window is None or not window[0] <= time_ns <= window[1]:
                    continue
                expected = other.first_exceeded_ns + travel
                fit = abs(time_ns - expected) / max(1, window[1] - window[0])
                if best is None or fit < best[0]:
                    best = (fit, incident)
        return None if best is None else best[1]

    def _window(self, seen: IncidentStation, station_id: str) -> tuple[int, int] | None:
        """When `station_id` may first exceed, given `seen`'s exceedances; None if not connected."""
        travel = self._signed_travel_ns(seen.station_id, station_id)
        if travel is None:
            return None
        tolerance = round(self.config.tolerance_s(travel / _NS) * _NS)
        low = (
            seen.first_exceeded_ns
            + travel
            - tolerance
            - self.network.report_interval_s(seen.station_id) * _NS
        )
        high = (
            max(seen.first_exceeded_ns, seen.last_exceeded_ns)
            + travel
            + tolerance
            + self.network.report_interval_s(station_id) * _NS
        )
        return low, high

    def _signed_travel_ns(self, a: str, b: str) -> int | None:
        """Travel ns from `a` down to `b`, negative when `b` is upstream, None on different paths."""
        down = self.network.travel_time(a, b)
        if down is not None:
            return round(down * _NS)
        up = self.network.travel_time(b, a)
        return None if up is None else -round(up * _NS)

    def _update_model(self, incident: Incident) -> bool:
        """Recompute origin, speed scale and forecast; True if the forecast's arrivals changed."""
        before = _arrivals(incident)
        incident.origin = estimate_origin(
            incident, self.network, self._last_clean, self._last_exceeded, self.config
        )
        incident.speed_scale = speed_scale(incident, self.network, self.config)
        incident.forecast = forecast(incident, self.network, self.config)
        return _arrivals(incident) != before

    def _should_close(self, incident: Incident) -> bool:
        last = max(s.last_exceeded_ns for s in incident.stations.values())
        if self._now - last >= self.config.stale_after.total_seconds() * _NS:
            return True
        if incident.status is not Status.RECEDING or incident.receding_since_ns is None:
            return False
        return self._now - incident.receding_since_ns >= self.config.quiet_time.total_seconds() * _NS

    def _expected_until(self, incident: Incident) -> int:
        """The end of the next section's arrival window below the front (0 if there is none)."""
        pending = next((f for f in incident.forecast if f.kind == "station"), None)
        if pending is None:
            return 0
        window = self._window(front_station(incident), pending.point_id)
        return 0 if window is None else window[1]

    def _next_section_clean_past_window(self, incident: Incident) -> bool:
        """Whether the next section below has reported clean after its arrival window (or there is
        none): the plume did not reach it, rather than its readings not being in yet (a logger's
        buffered upload, a backlog being read), which the clock alone cannot tell apart."""
        pending = next((f for f in incident.forecast if f.kind == "station"), None)
        if pending is None:
            return True
        window = self._window(front_station(incident), pending.point_id)
        clean = self._last_clean.get((pending.point_id, incident.item))
        return window is None or (clean is not None and clean[0] >= window[1])

    def _close(self, incident: Incident) -> None:
        del self._open[incident.id]
        for station_id in incident.stations:
            self._member.pop((station_id, incident.item), None)
        if self.config.max_closed:
            self._closed.append(incident)

    def _event(
        self, incident: Incident, kind: EventKind, time_ns: int, station_id: str | None = None
    ) -> IncidentEvent:
        event = IncidentEvent(kind, incident.id, time_ns, station_id)
        incident.timeline.append(event)
        incident.updated_ns = max(incident.updated_ns, time_ns)
        return event


def _arrivals(incident: Incident) -> tuple[tuple[str, int], ...]:
    return tuple((f.point_id, f.eta_ns // (_ETA_RESOLUTION_S * _NS)) for f in incident.forecast)


def replay(
    tracker: IncidentTracker, readings: Iterable[tuple[str, str, int, float, float]]
) -> list[IncidentEvent]:
    """Feed `(station_id, item, time_ns, value, limit)` readings in the given order; all events."""
    events: list[IncidentEvent] = []
    for station_id, item, time_ns, value, limit in readings:
        events += tracker.observe(station_id, item, time_ns, value, limit)
    return events
