"""Message templates: the title and text that the chat channels (DingTalk, WeCom, Slack) send.

A template is a `str.format` string over a flat set of named text fields. Unknown fields and
attribute or index access (`{station.name}`, `{values[0]}`) are refused when the configuration
loads, so a typo fails at start-up rather than when the first alert fires. Single braces are
fields; write `{{` and `}}` for literal braces. (`${...}` would be taken for an environment
reference by the configuration loader, hence `str.format` rather than `string.Template`.)

One event renders `title` and `text`. A digest (several events in one message, sent when a
receiver's rate limit would otherwise be exceeded) renders `digest_title`, then `digest_header`
and one `digest_line` per event, in event order.

Event fields: key, alert_id, rule, kind, status, status_label (FIRING / RESOLVED), severity,
summary, description, station_id, station_name, district, basin, river, water_body, parameter,
water_class, target_class, primary_pollutants, values, starts_at, ends_at, event_at, link,
reminder (" (reminder)" for a re-notification, else empty). Absent values render as "-".
Digest title and header fields: count, firing, resolved.

Example:
    notify:
      receivers:
        - type: wecom
          name: duty-room
          webhook_key: "${WECOM_ROBOT_KEY}"
          template:
            title: "[{status_label}] {station_name}: {summary}"
            text: "**{status_label}** {station_name} ({district}) {values}, class {water_class}\\n{link}"
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Final, Self

from pydantic import Field, model_validator

from alerts.events import AlertEvent
from config.types import StrictModel

EVENT_FIELDS: Final = frozenset(
    {
        "key", "alert_id", "rule", "kind", "status", "status_label", "severity", "summary",
        "description", "station_id", "station_name", "district", "basin", "river", "water_body",
        "parameter", "water_class", "target_class", "primary_pollutants", "values", "starts_at",
        "ends_at", "event_at", "link", "reminder",
    }
)  # fmt: skip
DIGEST_FIELDS: Final = frozenset({"count", "firing", "resolved"})
MISSING: Final = "-"
# Preferred order when an event carries several links; any other link comes after these.
_LINK_ORDER: Final = ("alert", "dashboard", "station")


@dataclass(frozen=True, slots=True)
class Notification:
    """What one send carries: one event, or a digest of several; `now` is the time of the attempt."""

    events: tuple[AlertEvent, ...]
    now: datetime
    # A periodic re-send of the firing set (Alertmanager forgets alerts that are not re-sent).
    resend: bool = False

    @property
    def keys(self) -> list[str]:
        return [event.key for event in self.events]

    @property
    def key(self) -> str:
        """The idempotency key: the event's own key, or for a digest one derived from all its keys."""
        if len(self.events) == 1:
            return self.events[0].key
        digest = hashlib.sha256("\n".join(sorted(self.keys)).encode()).hexdigest()[:32]
        return f"digest-{digest}"

    @property
    def is_digest(self) -> bool:
        return len(self.events) > 1


class MessageTemplate(StrictModel):
    title: str = Field(
        "[{status_label}] {summary}{reminder}",
        description="Title of one event's message (DingTalk's title, the first line elsewhere).",
    )
    text: str = Field(
        "### [{status_label}] {summary}{reminder}\n"
        "- Station: {station_name} ({station_id})\n"
        "- Where: {district} · {river} · {basin}\n"
        "- Severity: {severity}\n"
        "- Class: {water_class} (target {target_class})\n"
        "- Primary pollutants: {primary_pollutants}\n"
        "- Values: {values}\n"
        "- Started: {starts_at}\n"
        "- Ended: {ends_at}\n"
        "{link}",
        description="Body of one event's message (markdown for DingTalk and WeCom, mrkdwn for Slack).",
    )
    digest_title: str = Field(
        "{count} alert notifications", description="Title of a digest (several events in one message)."
    )
    digest_header: str = Field(
        "### {count} alert notifications ({firing} firing, {resolved} resolved)",
        description="First lines of a digest's body.",
    )
    digest_line: str = Field(
        "- [{status_label}] {summary} · {station_name} · {values} · {event_at}",
        description="One line per event of a digest.",
    )

    @model_validator(mode="after")
    def _known_fields(self) -> Self:
        for name in ("title", "text", "digest_line"):
            _check_fields(name, getattr(self, name), EVENT_FIELDS)
        for name in ("digest_title", "digest_header"):
            _check_fields(name, getattr(self, name), DIGEST_FIELDS)
        return self


def render(template: MessageTemplate, notification: Notification) -> tuple[str, str]:
    """(title, text) of a notification: the event's message, or the digest of all its events."""
    if not notification.is_digest:
        fields = event_fields(notification.events[0])
        return template.title.format_map(fields), template.text.format_map(fields)
    firing = sum(1 for e in notification.events if e.status == "firing")
    counts = {
        "count": str(len(notification.events)),
        "firing": str(firing),
        "resolved": str(len(notification.events) - firing),
    }
    lines = [template.digest_line.format_map(event_fields(e)) for e in notification.events]
    text = "\n".join([template.digest_header.format_map(counts), "", *lines])
    return template.digest_title.format_map(counts), text


def event_fields(event: AlertEvent) -> dict[str, str]:
    """The template fields of one event, every one a string."""
    station = event.station
    fields = {
        "key": event.key,
        "alert_id": event.alert_id,
        "rule": event.rule,
        "kind": event.kind,
        "status": event.status,
        "status_label": event.status.upper(),
        "severity": event.severity,
        "summary": event.annotations.get("summary") or _default_summary(event),
        "description": event.annotations.get("description", ""),
        "station_id": station.id if station else event.labels.get("station_id", ""),
        "station_name": station.name if station else "",
        "district": station.district if station else "",
        "basin": station.basin if station else "",
        "river": station.river if station else "",
        "water_body": station.water_body if station else "",
        "parameter": event.parameter or "",
        "water_class": event.water_class or "",
        "target_class": event.target_class or (station.target_class if station else ""),
        "primary_pollutants": ", ".join(event.primary_pollutants),
        "values": ", ".join(f"{code}={_number(v)}" for code, v in event.values.items()),
        "starts_at": _time(event.starts_at),
        "ends_at": _time(event.ends_at),
        "event_at": _time(event.event_at),
        "link": primary_link(event.links),
        "reminder": " (reminder)" if event.reminder else "",
    }
    keep_empty = {"reminder", "description", "link"}
    return {k: v if v or k in keep_empty else MISSING for k, v in fields.items()}


def primary_link(links: Mapping[str, str]) -> str:
    for name in _LINK_ORDER:
        if links.get(name):
            return links[name]
    return next(iter(links.values()), "")


def _default_summary(event: AlertEvent) -> str:
    parts = [event.rule, event.station.name if event.station else "", event.parameter or ""]
    return " ".join(p for p in parts if p)


def _time(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else ""


def _number(value: float) -> str:
    return f"{value:.4g}"


def _check_fields(name: str, template: str, allowed: frozenset[str]) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc} (write {{{{ and }}}} for literal braces)") from None
    for _literal, field, _spec, _conversion in parsed:
        if field is not None and field not in allowed:
            known = ", ".join(sorted(allowed))
            raise ValueError(f"{name}: unknown field {{{field}}}; known fields: {known}")
    try:  # a trial render catches what parsing lets through: nested fields, numeric format specs
        template.format_map(dict.fromkeys(allowed, "x"))
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"{name}: cannot be rendered: {exc!r}") from None


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` within `max_bytes` of UTF-8: as many whole lines as fit, then a note of how many were cut."""
    if len(text.encode()) <= max_bytes:
        return text
    lines = text.split("\n")
    # prefix[n]: bytes of the first n lines, each with its newline
    prefix = [0, *accumulate(len(line.encode()) + 1 for line in lines)]
    for keep in range(len(lines) - 1, 0, -1):
        note = f"… ({len(lines) - keep} more lines cut)"
        if prefix[keep] + len(note.encode()) <= max_bytes:
            return "\n".join([*lines[:keep], note])
    ellipsis = "…"
    return text.encode()[: max_bytes - len(ellipsis.encode())].decode(errors="ignore") + ellipsis
