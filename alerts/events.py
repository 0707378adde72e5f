"""Notification events: what the alert engine hands to the notifiers, through a durable outbox.

Every alert transition (firing, resolved, a re-notification of a firing alert) becomes one
`AlertEvent`, written by the engine into the `notification_events` table of the alert database in
the same transaction as the state change, so a crash can neither lose an event nor send one for a
state that was not stored. The notifier side reads that table from its own durable watermark,
routes each event to receivers and delivers it at least once; `key` is the idempotency key that
receivers (and our tests) use to drop repeats.

The JSON form (`to_json`) is the documented body of the generic webhook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

EventStatus = Literal["firing", "resolved"]

# The alert database table the engine writes and the notifier dispatcher reads (DDL owned by
# alerts.store; listed here as the contract between the two sides).
EVENTS_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS notification_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL,
    event TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class StationInfo:
    id: str
    name: str
    district: str
    basin: str
    river: str
    water_body: str
    target_class: str


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One notification: an alert's identity, its new status and what caused it.

    `alert_id` is a stable hash of the identity labels (rule, station, parameter) and never of
    values; `key` is `<alert_id>:<sequence>` and unique per notification.
    """

    key: str
    alert_id: str
    rule: str
    kind: str
    status: EventStatus
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    event_at: datetime
    ends_at: datetime | None = None
    station: StationInfo | None = None
    parameter: str | None = None
    water_class: str | None = None
    target_class: str | None = None
    primary_pollutants: tuple[str, ...] = ()
    values: dict[str, float] = field(default_factory=dict)
    reminder: bool = False
    silenced: bool = False
    acknowledged: bool = False
    links: dict[str, str] = field(default_factory=dict)
    # Receivers the event is addressed to by name (an incident's river chiefs, duty rooms and
    # intake operators), besides those the routes choose.
    receivers: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "alert_id": self.alert_id,
            "rule": self.rule,
            "kind": self.kind,
            "status": self.status,
            "severity": self.severity,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at.isoformat(),
            "event_at": self.event_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "station": None
            if self.station is None
            else {
                "id": self.station.id,
                "name": self.station.name,
                "district": self.station.district,
                "basin": self.station.basin,
                "river": self.station.river,
                "water_body": self.station.water_body,
                "target_class": self.station.target_class,
            },
            "parameter": self.parameter,
            "water_class": self.water_class,
            "target_class": self.target_class,
            "primary_pollutants": list(self.primary_pollutants),
            "values": dict(self.values),
            "reminder": self.reminder,
            "silenced": self.silenced,
            "acknowledged": self.acknowledged,
            "links": dict(self.links),
            "receivers": list(self.receivers),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertEvent:
        station = data.get("station")
        return cls(
            key=data["key"],
            alert_id=data["alert_id"],
            rule=data["rule"],
            kind=data["kind"],
            status=data["status"],
            severity=data["severity"],
            labels=dict(data["labels"]),
            annotations=dict(data["annotations"]),
            starts_at=datetime.fromisoformat(data["starts_at"]),
            event_at=datetime.fromisoformat(data["event_at"]),
            ends_at=datetime.fromisoformat(data["ends_at"]) if data.get("ends_at") else None,
            station=StationInfo(**station) if station else None,
            parameter=data.get("parameter"),
            water_class=data.get("water_class"),
            target_class=data.get("target_class"),
            primary_pollutants=tuple(data.get("primary_pollutants") or ()),
            values={k: float(v) for k, v in (data.get("values") or {}).items()},
            reminder=bool(data.get("reminder")),
            silenced=bool(data.get("silenced")),
            acknowledged=bool(data.get("acknowledged")),
            links=dict(data.get("links") or {}),
            receivers=tuple(data.get("receivers") or ()),
        )
