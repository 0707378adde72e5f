"""Message templates: the title and text that the chat channels (DingTalk, WeCom, Slack) send.

A template is a `str.format` string over a flat set of named text fields. Unknown fields and
attribute or index access (`{station.name}`, `{values[0]}`) are refused when the configuration
loads, so a typo fails at start-up rather than when the first alert fires. Single braces are
fields; write `{{` and `}}` for literal braces. (`${...}` would be taken for an environment
reference by the configuration loader, hence `str.format` rather than `string.Template`.)

One event renders `title` and `text`. A digest (several events in one message, sent when a
receiver's rate limit would otherwise be exceeded) renders `digest_title`, then `digest_header`
and one `digest_line` per event, in event order.

Nothing is ever cut. A message longer than its channel takes (WeCom 4096 bytes, DingTalk
20 000 bytes, Slack 3000 characters a section) is split into parts (`render_parts`), each whole
lines of the message within the limit, each titled and headed with `part_note`
("（第 2/3 部分）"); a line longer than the limit alone is split between parts. Each part is a
message of its own, which the outbox sends in order and records as it is accepted.

Event fields: key, alert_id, rule, kind, status, status_label (FIRING / RESOLVED), severity,
summary, description, station_id, station_name, district, basin, river, water_body, parameter,
water_class, target_class, primary_pollutants, values, starts_at, ends_at, event_at, link,
reminder (" (reminder)" for a re-notification, else empty). Absent values render as "-".
Digest title and header fields: count, firing, resolved. Part note fields: part, parts.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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
PART_FIELDS: Final = frozenset({"part", "parts"})
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
    # Which of the messages the channel splits it into this send carries (0-based), of how many.
    part: int = 0
    parts: int = 1

    @property
    def keys(self) -> list[str]:
        return [event.key for event in self.events]

    @property
    def key(self) -> str:
        """The idempotency key: the event's own key, or for a digest one derived from all its keys;
        a re-send (not a delivery of its events: no receiver may drop it) `resend-<hash>-<time>`."""
        if len(self.events) == 1 and not self.resend:
            return self.events[0].key
        digest = hashlib.sha256("\n".join(sorted(self.keys)).encode()).hexdigest()[:32]
        return f"resend-{digest}-{int(self.now.timestamp())}" if self.resend else f"digest-{digest}"

    @property
    def part_key(self) -> str:
        """The idempotency key of this part: `key`, or `<key>#<part>/<parts>` when split."""
        return self.key if self.parts == 1 else f"{self.key}#{self.part + 1}/{self.parts}"

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
    part_note: str = Field(
        "（第 {part}/{parts} 部分）",
        description="Added to the title and the first line of each part of a message split to fit "
        "the channel's size limit.",
    )

    @model_validator(mode="after")
    def _known_fields(self) -> Self:
        for name in ("title", "text", "digest_line"):
            _check_fields(name, getattr(self, name), EVENT_FIELDS)
        for name in ("digest_title", "digest_header"):
            _check_fields(name, getattr(self, name), DIGEST_FIELDS)
        _check_fields("part_note", self.part_note, PART_FIELDS)
        return self


def render(template: MessageTemplate, notification: Notification) -> tuple[str, str]:
    """(title, text) of a notification: the event's message, or the digest of all its events."""
    title, head, gap, body = _layout(template, notification)
    return title, "\n".join([head, *gap, *body])


def render_parts(
    template: MessageTemplate, notification: Notification, fits: Callable[[str, str], bool]
) -> list[tuple[str, str]]:
    """The (title, text) messages that together carry the whole notification, each one `fits`.

    One message when it fits. Else parts of whole lines in order, each with the first line (a
    digest's header, an event's heading) and `part_note`; a line too long for a part alone is
    split at character boundaries. `fits` must be monotonic (a prefix of what fits fits).
    """
    title, text = render(template, notification)
    if fits(title, text):
        return [(title, text)]
    _title, first, blank, lines = _layout(template, notification)
    digits = 1
    while True:  # the note of the widest part number reserves room in every part
        widest = template.part_note.format_map({"part": "9" * digits, "parts": "9" * digits})
        head, gap, chunks = _chunks(title + widest, (first, blank, lines), widest, fits)
        if len(str(len(chunks))) <= digits:
            break
        digits += 1
    parts: list[tuple[str, str]] = []
    for number, chunk in enumerate(chunks, 1):
        note = template.part_note.format_map({"part": str(number), "parts": str(len(chunks))})
        parts.append((title + note, "\n".join([head + note, *gap, *chunk])))
    return parts


def _chunks(
    title: str, layout: tuple[str, list[str], list[str]], note: str, fits: Callable[[str, str], bool]
) -> tuple[str, list[str], list[list[str]]]:
    """The heading, the blank lines after it and the body's lines in parts, each part with `note`."""
    head, gap, body = layout
    if not fits(title, head + note):  # no room for the heading: it becomes a line like the others
        head, gap, body = "", [], [head, *gap, *body]

    def part_fits(part: list[str]) -> bool:
        return fits(title, "\n".join([head + note, *gap, *part]))

    return head, gap, pack_lines(body, part_fits)


def _layout(template: MessageTemplate, notification: Notification) -> tuple[str, str, list[str], list[str]]:
    """(title, first line, the blank lines after it, the body lines) of a notification."""
    if not notification.is_digest:
        fields = event_fields(notification.events[0])
        first, *rest = template.text.format_map(fields).split("\n")
        return template.title.format_map(fields), first, [], rest
    firing = sum(1 for e in notification.events if e.status == "firing")
    counts = {
        "count": str(len(notification.events)),
        "firing": str(firing),
        "resolved": str(len(notification.events) - firing),
    }
    lines = [template.digest_line.format_map(event_fields(e)) for e in notification.events]
    return template.digest_title.format_map(counts), template.digest_header.format_map(counts), [""], lines


def pack_lines(lines: Sequence[str], fits: Callable[[list[str]], bool]) -> list[list[str]]:
    """`lines` in order, in as few chunks that fit as packing whole lines greedily gives."""
    chunks: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if fits([*current, line]):
            current.append(line)
            continue
        if current:
            chunks.append(current)
            current = []
        if fits([line]):
            current = [line]
            continue
        rest = line
        while rest:  # one line longer than a part: its pieces, each as long as fits (at least 1)
            low, high = 1, len(rest)
            while low < high:
                middle = (low + high + 1) // 2
                if fits([rest[:middle]]):
                    low = middle
                else:
                    high = middle - 1
            chunks.append([rest[:low]])
            rest = rest[low:]
    if current or not chunks:
        chunks.append(current)
    return chunks


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


class PartRenderer:
    """`render_parts` for one channel, remembering the last notification's parts: the outbox
    asks how many there are, then has them sent one by one."""

    def __init__(self, template: MessageTemplate, fits: Callable[[str, str], bool]) -> None:
        self._template = template
        self._fits = fits
        self._last: tuple[tuple[str, ...], list[tuple[str, str]]] | None = None

    def parts(self, notification: Notification) -> list[tuple[str, str]]:
        """Every part of the notification, in order."""
        keys = tuple(notification.keys)
        if self._last is None or self._last[0] != keys:
            self._last = (keys, render_parts(self._template, notification, self._fits))
        return self._last[1]

    def part(self, notification: Notification) -> tuple[str, str]:
        """The part `notification.part` names; IndexError if the notification has fewer."""
        return self.parts(notification)[notification.part]
