"""The incident tracker inside the alert engine: readings in, one notification thread per incident out.

The engine offers every new real-time reading it admits (`offer`: one dict lookup for the
station's limit of the item, and a tuple kept when the item is followed); at the end of a batch
`flush` feeds them to the tracker in event-time order, across stations, and turns the incident
changes into notification events; `tick` lets time act (receding, closed, unconfirmed). The
tracker's state and the threads' sequence numbers are one JSON document (`state`), which the
engine stores in the same transaction as the events, so a crash replays nothing twice: replayed
readings are duplicates to the engine and are never offered again.

A thread is the incident's notifications, keyed `<incident id>:<n>`: opened (with the origin reach
and the arrival forecast), confirmed at each further section, resumed, not seen downstream (a
one-station spike: possibly a sensor, see the data alerts), receding, and closed (status
resolved). Forecast-only changes update the incident (API, dashboard) without a message. Each
event is addressed (`AlertEvent.receivers`) to whoever must act: the river chiefs and duty rooms
of the origin reach and its district, and everyone downstream (districts, boundary sections,
intake operators), as the network names them; the routes add their own receivers as for any
alert (label `kind="incident"`, `category="water"`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo

from alerts.events import AlertEvent, StationInfo
from alerts.incidents.config import IncidentConfig
from alerts.incidents.limits import counts, upper_limit
from alerts.incidents.model import EventKind, Incident, IncidentEvent
from alerts.incidents.tracker import IncidentTracker
from config.network import RiverNetwork
from config.registry import Station
from config.standards import Standard
from config.times import from_ns

RULE: Final = "incident"
# The changes that are a message of the thread; the others only update the incident.
NOTIFIED: Final = frozenset(
    {
        EventKind.OPENED,
        EventKind.CONFIRMED,
        EventKind.RESUMED,
        EventKind.UNCONFIRMED,
        EventKind.RECEDING,
        EventKind.CLOSED,
    }
)
_WHAT: Final = {
    EventKind.OPENED: "污染事件",
    EventKind.CONFIRMED: "污染事件已在下游断面确认",
    EventKind.RESUMED: "污染事件再次超标",
    EventKind.UNCONFIRMED: "未在下游断面出现，疑似单站数据问题",
    EventKind.RECEDING: "污染事件消退中",
    EventKind.CLOSED: "污染事件已结束",
}
_KIND_TEXT: Final = {"intake": "取水口", "boundary": "跨界断面", "station": "断面", "other": ""}
_FORECAST_LINES: Final = 6
_SHANGHAI: Final = ZoneInfo("Asia/Shanghai")


class IncidentFeed:
    """The engine's incident tracker and the threads' sequence numbers (module docstring)."""

    def __init__(
        self,
        network: RiverNetwork,
        stations: Mapping[str, Station],
        standard: Standard,
        config: IncidentConfig,
    ) -> None:
        self.network = network
        self.tracker = IncidentTracker(network, config)
        self._stations = stations
        self._standard = standard
        self._config = config
        self._limits: dict[tuple[str, str], float | None] = {}
        self._pending: list[tuple[int, str, str, float, float]] = []
        self._sequence: dict[str, int] = {}
        self._addressed: dict[str, tuple[str, ...]] = {}
        # The newest event time offered: time acts on incidents no further than the data have come.
        self._newest_ns = 0
        self.changed = False

    # --- feeding ---------------------------------------------------------------------------------
    def offer(self, station_id: str, item: str, time_ns: int, value: float, flag: str) -> None:
        """A new reading the engine admitted; kept for `flush` when its item is followed there."""
        key = (station_id, item)
        limit = self._limits.get(key, 0.0)
        if limit == 0.0:
            station = self._stations.get(station_id)
            limit = self._limits[key] = (
                None
                if station is None or not self.network.is_monitoring(station_id)
                else upper_limit(self._standard, station, item)
            )
        if limit is not None and counts(flag, value, limit):
            self._pending.append((time_ns, station_id, item, value, limit))
            self._newest_ns = max(self._newest_ns, time_ns)

    def flush(self) -> list[AlertEvent]:
        """Feed the offered readings in event-time order; the notification events of the changes."""
        if not self._pending:
            return []
        self._pending.sort()
        changes: list[IncidentEvent] = []
        for time_ns, station_id, item, value, limit in self._pending:
            changes += self.tracker.observe(station_id, item, time_ns, value, limit)
        self._pending.clear()
        self.changed = True
        return self._events(changes)

    def tick(self, now_ns: int) -> list[AlertEvent]:
        """Let time act (receding, closed, unconfirmed), up to `now_ns` but never past the newest
        reading offered: while a backlog is being read, its later readings are not in yet, and the
        wall clock would call a plume receding before its next section's readings arrive."""
        changes = self.tracker.tick(min(now_ns, self._newest_ns))
        if changes:
            self.changed = True
        return self._events(changes)

    # --- state -----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "tracker": self.tracker.to_json(),
            "sequence": dict(self._sequence),
            "addressed": {k: list(v) for k, v in self._addressed.items()},
            "newest_ns": self._newest_ns,
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.tracker = IncidentTracker.from_json(data["tracker"], self.network, self._config)
        self._sequence = {k: int(v) for k, v in data.get("sequence", {}).items()}
        self._addressed = {k: tuple(v) for k, v in data.get("addressed", {}).items()}
        self._newest_ns = int(data.get("newest_ns", 0))

    # --- notifications ---------------------------------------------------------------------------
    def _events(self, changes: list[IncidentEvent]) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        for change in changes:
            if change.kind not in NOTIFIED:
                continue
            incident = self.tracker.get(change.incident_id)
            if incident is not None:
                out.append(self._event(incident, change))
        return out

    def _event(self, incident: Incident, change: IncidentEvent) -> AlertEvent:
        sequence = self._sequence[incident.id] = self._sequence.get(incident.id, 0) + 1
        first = incident.in_flow_order()[0]
        origin_station = self._stations[incident.origin.downstream if incident.origin else first.station_id]
        confirmed = len(incident.stations) > 1
        severity = "critical" if confirmed else "warning"
        receivers = self._receivers(incident)
        labels = {
            "rule": RULE,
            "kind": RULE,
            "severity": severity,
            "category": "water",
            "incident_id": incident.id,
            "parameter": incident.item,
            "river": origin_station.river,
            "district": origin_station.district,
            "basin": origin_station.basin,
        }
        summary, description = self._texts(incident, change)
        values = {s.station_id: s.peak for s in incident.in_flow_order()}
        return AlertEvent(
            key=f"{incident.id}:{sequence}",
            alert_id=incident.id,
            rule=RULE,
            kind=RULE,
            status="resolved" if change.kind is EventKind.CLOSED else "firing",
            severity=severity,
            labels=labels,
            annotations={"summary": summary, "description": description, "change": str(change.kind)},
            starts_at=from_ns(incident.opened_ns),
            event_at=from_ns(change.time_ns),
            ends_at=from_ns(incident.closed_ns) if incident.closed_ns is not None else None,
            station=_info(origin_station),
            parameter=incident.item,
            primary_pollutants=(incident.item,),
            values=values,
            links={"incident": f"/api/v1/incidents?id={incident.id}"},
            receivers=receivers,
        )

    def _receivers(self, incident: Incident) -> tuple[str, ...]:
        """Who must act now, and everyone told before: a thread never drops a receiver it addressed."""
        names: dict[str, None] = dict.fromkeys(self._addressed.get(incident.id, ()))
        if incident.origin is not None:
            reach = self.network.reach_of(incident.origin.downstream)
            names.update(dict.fromkeys(self.network.responsible(reach).receivers))
        front = incident.in_flow_order()[-1].station_id
        names.update(dict.fromkeys(self.network.responsible_downstream(front).receivers))
        self._addressed[incident.id] = addressed = tuple(names)
        return addressed

    def _texts(self, incident: Incident, change: IncidentEvent) -> tuple[str, str]:
        item = self._standard.items.get(incident.item)
        item_name = item.name_zh if item is not None else incident.item
        unit = self._standard.unit_of(incident.item) if item is not None else ""
        path = "→".join(
            f"{self._name(s.station_id)} {_local(s.first_exceeded_ns)} 峰值{s.peak:g}{unit}"
            for s in incident.in_flow_order()
        )
        where = "" if change.station_id is None else f"（{self._name(change.station_id)}）"
        summary = f"{item_name}{_WHAT[change.kind]}{where}：{path}"
        lines = [f"{summary}。"]
        if incident.origin is not None:
            origin = incident.origin
            upper = "、".join(self._name(b.station_id) for b in origin.upstream) or "河源"
            lines.append(
                f"疑似源头河段：{origin.river} {upper} 至 {self._name(origin.downstream)} 之间，"
                f"估计排入时间 {_local(origin.entry_earliest_ns)}–{_local(origin.entry_latest_ns)}。"
            )
        if incident.forecast and change.kind is not EventKind.CLOSED:
            arrivals = [
                f"{_KIND_TEXT.get(f.kind, '')}{self._name(f.point_id)} 约 {_local(f.eta_ns)}"
                f"（±{f.tolerance_s / 3600:.1f} 小时，预计 {f.expected_value:.3g}{unit}）"
                for f in incident.forecast[:_FORECAST_LINES]
            ]
            lines.append("预计到达：" + "；".join(arrivals) + "。")
        responsibility = self._responsibility(incident)
        if responsibility:
            lines.append(responsibility)
        lines.append(f"事件编号 {incident.id}，状态 {incident.status}。")
        return summary, "\n".join(lines)

    def _responsibility(self, incident: Incident) -> str:
        if incident.origin is None:
            return ""
        origin = self.network.responsible(self.network.reach_of(incident.origin.downstream))
        front = incident.in_flow_order()[-1].station_id
        below = self.network.responsible_downstream(front)
        parts = []
        if origin.districts or origin.river_chiefs:
            parts.append(f"源头责任：{'、'.join(origin.districts + origin.river_chiefs)}")
        if below.districts:
            parts.append(f"下游：{'、'.join(below.districts)}")
        return "；".join(parts) + "。" if parts else ""

    def _name(self, point_id: str) -> str:
        station = self._stations.get(point_id)
        if station is not None:
            return station.name
        point = self.network.point(point_id)
        return point.name if point is not None else point_id


def _info(station: Station) -> StationInfo:
    return StationInfo(
        station.id,
        station.name,
        station.district,
        station.basin,
        station.river,
        station.water_body,
        station.target_class.value,
    )


def _local(time_ns: int) -> str:
    """A time as a duty room reads it: Asia/Shanghai, minutes."""
    return from_ns(time_ns).astimezone(_SHANGHAI).strftime("%m-%d %H:%M")
