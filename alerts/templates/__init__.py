"""Message templates: the title and text that the chat channels (DingTalk, WeCom, Slack) send.

A template is a `str.format` string over a flat set of named text fields. Unknown fields and
attribute or index access (`{station.name}`, `{values[0]}`) are refused when the configuration
loads, so a typo fails at start-up rather than when the first alert fires. Single braces are
fields; write `{{` and `}}` for literal braces. (`${...}` would be taken for an environment
reference by the configuration loader, hence `str.format` rather than `string.Template`.)

One event renders `title` and `text`. A digest (several events in one message, sent when a
receiver's rate limit would otherwise be exceeded) renders `digest_title`, then `digest_header`
and one `digest_line` per event, in event order.

Language. `language: zh` (the default) words every message in Chinese for the duty rooms and
river chiefs who read them: 【告警·严重】, 【升级为严重】, 【已恢复】, 水质类别, 主要污染指标, items by
their GB 3838-2002 names (氨氮) with units, times in the station's local time as
`2026-07-01 08:00`. `language: en` gives the English set (`[FIRING] ...`, `Severity: warning`,
codes such as `nh3n=1.81`) for a platform read in English. The language picks the default of
every template left out and the wording of the fields (`status_label`, `severity_label`,
`values`, ...); a template given is used as written. Slack has its own defaults (mrkdwn).

Nothing is ever cut. A message longer than its channel takes (WeCom 4096 bytes, DingTalk
20 000 bytes, Slack 3000 characters a section) is split into parts (`render_parts`), each whole
lines of the message within the limit, each titled and headed with `part_note`
("（第 2/3 部分）"); a line longer than the limit alone is split between parts. Each part is a
message of its own, which the outbox sends in order and records as it is accepted.

Event fields (worded in the template's language; absent values render as "-"):
    key, alert_id, rule, kind, status (firing | resolved), severity (critical | warning | info)
    status_label      告警 / 已恢复 / 提醒 (a reminder); FIRING / RESOLVED in English
    severity_label    严重 / 警告 / 提示; critical / warning / info in English
    change_label      升级 / 降级 when the alert's severity changed while it fires, else empty
    headline          what happened, for the title: 告警·严重, 升级为严重, 降级为警告,
                      提醒：严重告警未恢复, 已恢复, 数据异常 (no valid data), 区域告警·警告 ...
    summary, description   the engine's texts
    station_id, station_name, district, basin, river, water_body   the station's ("-" if none)
    place             the station's name, or the region of a regional alert (区县 渝中区)
    parameter         the item's code;  parameter_name: its name (氨氮; ammonia nitrogen)
    water_class, target_class, primary_pollutants (names in Chinese, codes in English), values
    starts_at, ends_at, event_at   local times, `2026-07-01 08:00`
    details           the lines that fit the event (station or region, severity, item, class,
                      values, times; no station lines for a regional alert, no class for a
                      data alert), each rendered with `detail_line` ({label}, {value})
    link              the alert's link;  reminder: " (reminder)" / "（提醒）" or empty
Digest title and header fields: count, firing, resolved. Part note fields: part, parts.
Times are shown in the zone the event names (annotation `timezone`), else the template's
`timezone` (Asia/Shanghai).

Example:
    notify:
      receivers:
        - type: wecom
          name: duty-room
          webhook_key: "${WECOM_ROBOT_KEY}"
          template:
            title: "【{headline}】{station_name}：{summary}"
            text: "**【{headline}】** {station_name}（{district}）{values}，水质类别 {water_class}\\n{link}"
        - type: slack
          name: provincial-platform
          url: "${SLACK_WEBHOOK_URL}"
          template: {language: en}
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from alerts.events import AlertEvent
from alerts.templates.fields import MISSING, WORDING, Wording, event_fields, primary_link
from alerts.templates.message import (
    DEFAULT_TEMPLATE,
    DEFAULT_TIMEZONE,
    DETAIL_FIELDS,
    DIGEST_FIELDS,
    EVENT_FIELDS,
    MARKDOWN_TEMPLATES,
    PART_FIELDS,
    Language,
    MessageTemplate,
    TemplateSet,
)

__all__ = [
    "DEFAULT_TEMPLATE", "DEFAULT_TIMEZONE", "DETAIL_FIELDS", "DIGEST_FIELDS", "EVENT_FIELDS",
    "MARKDOWN_TEMPLATES", "MISSING", "PART_FIELDS", "WORDING", "Language", "MessageTemplate",
    "Notification", "PartRenderer", "TemplateSet", "Wording", "event_fields", "pack_lines",
    "primary_link", "render", "render_parts",
]  # fmt: skip


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
        fields = event_fields(notification.events[0], template)
        first, *rest = template.text.format_map(fields).split("\n")
        return template.title.format_map(fields), first, [], rest
    firing = sum(1 for e in notification.events if e.status == "firing")
    counts = {
        "count": str(len(notification.events)),
        "firing": str(firing),
        "resolved": str(len(notification.events) - firing),
    }
    lines = [template.digest_line.format_map(event_fields(e, template)) for e in notification.events]
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
