"""Notification events from alert records: what a notice says and where it points.

`labels_of` gives an alert its labels once, when its identity first fires: `rule`, `kind`,
`severity`, the rule's own labels, and `station_id`, `district`, `basin`, `river` of its
station, `parameter`, or the region label (`district: 渝中区`) of a regional alert. Labels never
hold values, so silences and receivers can match them.

`build_event` renders one `AlertEvent` for a transition that notifies: a firing or reminder
shows the finding that made the alert fire (`cause`), a resolved one the finding that resolved
it (`current`), with `starts_at` (the condition began), `ends_at` (it cleared) and `event_at`
(the transition). Annotations are plain words in Chinese and English: `summary`, `description`,
plus `silenced_by` and `acknowledged_by` when they apply. Any station alert also tells the
station's class now and its primary pollutants (`status`), the first things an operator asks.
Links are paths of the operator API (`alerts.api`), relative to the daemon's address.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from alerts.events import AlertEvent, StationInfo
from alerts.lifecycle import AlertRecord, Step, Transition
from alerts.rules.base import Finding, PointStatus, RuleConfigBase
from alerts.silences import Silence
from config.registry import Station
from config.times import from_ns

_GROUP_LABELS = ("district", "basin", "river")
# Every alert's `category` label, by rule kind, so routes can send data problems to the maintenance
# crew and water problems to the duty room: a station that cannot measure is not polluted water.
_DATA_KINDS = frozenset({"data_availability", "silent_station", "instrument_fault"})


def category_of(kind: str) -> str:
    """`data` (no valid data), `hydrology` (water level) or `water` (water quality)."""
    if kind in _DATA_KINDS:
        return "data"
    return "hydrology" if kind == "water_level" else "water"


def labels_of(
    config: RuleConfigBase, kind: str, finding: Finding, registry: Mapping[str, Station]
) -> dict[str, str]:
    labels = {
        "rule": config.name,
        "kind": kind,
        "severity": finding.severity or config.severity,
        "category": category_of(kind),
        **config.labels,
    }
    if finding.station_id is not None:
        station = registry[finding.station_id]
        labels.update(
            station_id=station.id, district=station.district, basin=station.basin, river=station.river
        )
    if finding.parameter is not None:
        labels["parameter"] = finding.parameter
    if finding.group is not None:
        labels[finding.group[0]] = finding.group[1]
    return labels


def build_event(
    record: AlertRecord,
    transition: Transition,
    *,
    station: Station | None,
    silence: Silence | None,
    status: PointStatus | None,
) -> AlertEvent:
    """The event of a notifying transition; `record.sequence` must already count it."""
    resolved = transition.notify == "resolved"
    snapshot = record.current if resolved else record.cause
    water_class = snapshot.get("water_class")
    primary = tuple(snapshot.get("primary_pollutants", ()))
    if water_class is None and status is not None and status.classification.water_class is not None:
        water_class = status.classification.water_class.value
        primary = status.classification.primary_pollutants
    annotations = {
        "summary": str(snapshot.get("summary", "")),
        "description": str(snapshot.get("description", "")),
    }
    if transition.step in (Step.ESCALATED, Step.DEESCALATED):
        annotations["change"] = transition.step.value
        if transition.previous_severity is not None:
            annotations["previous_severity"] = transition.previous_severity
    if silence is not None:
        annotations["silenced_by"] = f"{silence.created_by}: {silence.reason}"
    if record.acked_by is not None:
        annotations["acknowledged_by"] = f"{record.acked_by}: {record.ack_comment or ''}".rstrip(": ")
    assert record.since_ns is not None  # every notified alert has started an episode
    return AlertEvent(
        key=f"{record.alert_id}:{record.sequence}",
        alert_id=record.alert_id,
        rule=record.rule,
        kind=record.kind,
        status="resolved" if resolved else "firing",
        severity=record.labels["severity"],
        labels=dict(record.labels),
        annotations=annotations,
        starts_at=from_ns(record.since_ns),
        event_at=from_ns(transition.at_ns),
        ends_at=from_ns(record.ended_ns) if resolved and record.ended_ns is not None else None,
        station=None if station is None else station_info(station),
        parameter=record.parameter,
        water_class=water_class,
        target_class=None if station is None else station.target_class.value,
        primary_pollutants=primary,
        values={k: float(v) for k, v in snapshot.get("values", {}).items()},
        reminder=transition.reminder,
        silenced=silence is not None,
        acknowledged=record.acked_by is not None,
        links=links_of(record),
    )


def links_of(record: AlertRecord) -> dict[str, str]:
    links = {
        "alert": f"/api/v1/alerts?alert_id={record.alert_id}",
        "history": f"/api/v1/alerts/history?alert_id={record.alert_id}",
    }
    if record.station_id is not None:
        links["station"] = f"/api/v1/stations?id={quote(record.station_id)}"
    else:
        group = next((k for k in _GROUP_LABELS if k in record.identity), None)
        if group is not None:
            links["compliance"] = f"/api/v1/compliance?group_by={group}"
    return links


def station_info(station: Station) -> StationInfo:
    return StationInfo(
        id=station.id,
        name=station.name,
        district=station.district,
        basin=station.basin,
        river=station.river,
        water_body=station.water_body,
        target_class=station.target_class.value,
    )
