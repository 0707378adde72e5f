"""The values of an incident: its stations, origin, forecast, status and events, and their JSON.

Two JSON forms: `Incident.to_json()` is the view (RFC 3339 times, stations in flow order) for the
API, the CLI and notifications; `to_state()` / `incident_from_state()` keep every field exactly
(times as int ns) for the tracker's state across restarts.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from config.network import Segment
from config.times import from_ns

JSON = dict[str, Any]


class Status(StrEnum):
    """open → confirmed (seen at a second section) → receding (back under the limit) → closed."""

    OPEN = "open"
    CONFIRMED = "confirmed"
    RECEDING = "receding"
    CLOSED = "closed"


class EventKind(StrEnum):
    """What changed; one notification thread per incident follows these."""

    OPENED = "opened"
    CONFIRMED = "confirmed"  # seen at another section (station_id), up- or downstream
    FORECAST_UPDATED = "forecast_updated"  # arrival times changed
    RECEDING = "receding"  # every station seen is back under the limit
    RESUMED = "resumed"  # a receding incident exceeds again (station_id)
    UNCONFIRMED = "unconfirmed"  # a one-station incident whose next section stayed clean (station_id)
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """One change of one incident, at event time."""

    kind: EventKind
    incident_id: str
    time_ns: int
    station_id: str | None = None

    def to_json(self) -> JSON:
        return {
            "kind": str(self.kind),
            "incident_id": self.incident_id,
            "time": iso(self.time_ns),
            "station_id": self.station_id,
        }

    def to_state(self) -> JSON:
        return {"kind": str(self.kind), "time_ns": self.time_ns, "station_id": self.station_id}


@dataclass(slots=True)
class IncidentStation:
    """A station where the incident's item exceeded its limit."""

    station_id: str
    river: str
    chainage_km: float
    outlet_km: float  # river km to the outlet: the flow order (larger is further upstream)
    limit: float
    first_exceeded_ns: int
    last_exceeded_ns: int
    peak: float
    peak_ns: int
    cleared_ns: int | None = None  # first clean reading after the last exceedance
    background: float | None = None  # the last clean value before the first exceedance
    background_ns: int | None = None

    def to_json(self) -> JSON:
        return {
            "station_id": self.station_id,
            "river": self.river,
            "chainage_km": self.chainage_km,
            "first_exceeded_at": iso(self.first_exceeded_ns),
            "last_exceeded_at": iso(self.last_exceeded_ns),
            "peak": self.peak,
            "peak_at": iso(self.peak_ns),
            "limit": self.limit,
            "cleared_at": iso_or_none(self.cleared_ns),
        }


@dataclass(frozen=True, slots=True)
class Bound:
    """A clean station bounding the origin reach upstream."""

    station_id: str
    pass_ns: int  # when a plume from above it would have passed it
    clean_ns: int | None = None  # a clean reading near that time: the plume did not come through

    @property
    def verified(self) -> bool:
        return self.clean_ns is not None


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the pollutant most likely entered: between the bounds and the first exceeding station."""

    river: str
    downstream: str
    upstream: tuple[Bound, ...]
    segments: tuple[Segment, ...]
    entry_earliest_ns: int
    entry_latest_ns: int

    @property
    def entry_estimate_ns(self) -> int:
        return (self.entry_earliest_ns + self.entry_latest_ns) // 2

    def to_json(self) -> JSON:
        return {
            "river": self.river,
            "downstream": self.downstream,
            "upstream": [
                {"station_id": b.station_id, "clean_at": iso_or_none(b.clean_ns), "verified": b.verified}
                for b in self.upstream
            ],
            "segments": [{"river": s.river, "from_km": s.from_km, "to_km": s.to_km} for s in self.segments],
            "entry_earliest": iso(self.entry_earliest_ns),
            "entry_latest": iso(self.entry_latest_ns),
            "entry_estimate": iso(self.entry_estimate_ns),
        }


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    """Expected arrival of the plume's front at a station or point downstream."""

    point_id: str
    kind: str
    river: str
    chainage_km: float
    distance_km: float
    travel_time_s: float
    eta_ns: int
    tolerance_s: float
    expected_value: float

    def to_json(self) -> JSON:
        return {
            "point_id": self.point_id,
            "kind": self.kind,
            "river": self.river,
            "chainage_km": self.chainage_km,
            "distance_km": round(self.distance_km, 3),
            "eta": iso(self.eta_ns),
            "eta_tolerance_s": round(self.tolerance_s),
            "expected_value": round(self.expected_value, 4),
        }


@dataclass(slots=True)
class Incident:
    """One pollution event followed along the rivers."""

    id: str
    item: str
    opened_ns: int
    updated_ns: int
    stations: dict[str, IncidentStation]
    status: Status = Status.OPEN
    origin: Origin | None = None
    forecast: tuple[ForecastPoint, ...] = ()
    speed_scale: float = 1.0  # observed over expected travel time, used by the forecast
    receding_since_ns: int | None = None
    closed_ns: int | None = None
    watch: str | None = None  # the next section below a one-station incident
    watch_clean_ns: int | None = None  # a clean reading there after the plume should have arrived
    not_seen_downstream: str | None = None  # set once that window passed with it clean
    timeline: list[IncidentEvent] = field(default_factory=list)

    def in_flow_order(self) -> list[IncidentStation]:
        """Stations from upstream to downstream (first exceedance breaks ties)."""
        return sorted(self.stations.values(), key=lambda s: (-s.outlet_km, s.first_exceeded_ns, s.station_id))

    @property
    def single_station(self) -> bool:
        return len(self.stations) == 1

    def to_json(self) -> JSON:
        """The view: item, status, stations in flow order, origin reach, forecast and timeline."""
        return {
            "id": self.id,
            "item": self.item,
            "status": str(self.status),
            "opened_at": iso(self.opened_ns),
            "updated_at": iso(self.updated_ns),
            "closed_at": iso_or_none(self.closed_ns),
            "single_station": self.single_station,
            "not_seen_downstream": self.not_seen_downstream,
            "stations": [s.to_json() for s in self.in_flow_order()],
            "origin": None if self.origin is None else self.origin.to_json(),
            "speed_scale": round(self.speed_scale, 3),
            "forecast": [f.to_json() for f in self.forecast],
            "timeline": [e.to_json() for e in self.timeline],
        }

    def to_state(self) -> JSON:
        """Every field, exactly, for `incident_from_state`."""
        origin = self.origin
        return {
            "id": self.id,
            "item": self.item,
            "opened_ns": self.opened_ns,
            "updated_ns": self.updated_ns,
            "status": str(self.status),
            "stations": [asdict(s) for s in self.stations.values()],
            "origin": None
            if origin is None
            else {
                "river": origin.river,
                "downstream": origin.downstream,
                "upstream": [asdict(b) for b in origin.upstream],
                "segments": [[s.river, s.from_km, s.to_km] for s in origin.segments],
                "entry_earliest_ns": origin.entry_earliest_ns,
                "entry_latest_ns": origin.entry_latest_ns,
            },
            "forecast": [asdict(f) for f in self.forecast],
            "speed_scale": self.speed_scale,
            "receding_since_ns": self.receding_since_ns,
            "closed_ns": self.closed_ns,
            "watch": self.watch,
            "watch_clean_ns": self.watch_clean_ns,
            "not_seen_downstream": self.not_seen_downstream,
            "timeline": [e.to_state() for e in self.timeline],
        }


def incident_from_state(data: JSON) -> Incident:
    """The incident `Incident.to_state()` wrote."""
    raw_origin = data["origin"]
    origin = (
        None
        if raw_origin is None
        else Origin(
            raw_origin["river"],
            raw_origin["downstream"],
            tuple(Bound(**b) for b in raw_origin["upstream"]),
            tuple(Segment(r, a, b) for r, a, b in raw_origin["segments"]),
            raw_origin["entry_earliest_ns"],
            raw_origin["entry_latest_ns"],
        )
    )
    return Incident(
        id=data["id"],
        item=data["item"],
        opened_ns=data["opened_ns"],
        updated_ns=data["updated_ns"],
        stations={s["station_id"]: IncidentStation(**s) for s in data["stations"]},
        status=Status(data["status"]),
        origin=origin,
        forecast=tuple(ForecastPoint(**f) for f in data["forecast"]),
        speed_scale=data["speed_scale"],
        receding_since_ns=data["receding_since_ns"],
        closed_ns=data["closed_ns"],
        watch=data["watch"],
        watch_clean_ns=data["watch_clean_ns"],
        not_seen_downstream=data["not_seen_downstream"],
        timeline=[
            IncidentEvent(EventKind(e["kind"]), data["id"], e["time_ns"], e["station_id"])
            for e in data["timeline"]
        ],
    )


def incident_id(item: str, station_id: str, first_ns: int) -> str:
    """Stable id: the item, the first exceeding station and its time, hashed."""
    digest = hashlib.sha256(f"{item}\x1f{station_id}\x1f{first_ns}".encode()).hexdigest()
    return f"inc-{digest[:16]}"


def iso(time_ns: int) -> str:
    """RFC 3339 in UTC, to the microsecond."""
    return from_ns(time_ns).isoformat().replace("+00:00", "Z")


def iso_or_none(time_ns: int | None) -> str | None:
    return None if time_ns is None else iso(time_ns)
