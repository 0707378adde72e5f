"""The fields of one event, worded in a language: labels, item names, local times, the detail lines.

See `alerts.templates` for the list of fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.events import AlertEvent
from alerts.templates.message import DEFAULT_TEMPLATE, DEFAULT_TIMEZONE, Language, MessageTemplate
from config.standards import default_standard

MISSING: Final = "-"
TIME_FORMAT: Final = "%Y-%m-%d %H:%M"
# What the engine's rules label alerts with (alerts.notices, alerts.rules).
DATA_KIND: Final = "data_availability"
# Preferred order when an event carries several links; any other link comes after these.
_LINK_ORDER: Final = ("alert", "dashboard", "station")
# Region labels of an alert without a station, in the order they name it.
_REGION_LABELS: Final = ("district", "basin", "river")
# The engine once prefixed resolved summaries with this; the status label says it now.
_RESOLVED_PREFIX: Final = "已恢复 / RESOLVED: "
# Fields that render as nothing when absent, so that a template can place them unconditionally.
_KEEP_EMPTY: Final = frozenset({"reminder", "description", "link", "change_label"})


def event_fields(event: AlertEvent, template: MessageTemplate = DEFAULT_TEMPLATE) -> dict[str, str]:
    """The template fields of one event, every one a string, worded in the template's language."""
    words = WORDING[template.language]
    zone = _zone(event, template.timezone)
    station = event.station
    kind = _kind_of(event)
    severity_label = words.severity.get(event.severity, event.severity)
    change_label = words.change.get(event.annotations.get("change", ""), "")
    fields = {
        "key": event.key,
        "alert_id": event.alert_id,
        "rule": event.rule,
        "kind": event.kind,
        "status": event.status,
        "status_label": words.status_label(event),
        "severity": event.severity,
        "severity_label": severity_label,
        "change_label": change_label,
        "headline": words.headline(event, kind, severity_label, change_label),
        "summary": _summary(event, words),
        "description": event.annotations.get("description", ""),
        "station_id": station.id if station else event.labels.get("station_id", ""),
        "station_name": station.name if station else "",
        "district": station.district if station else "",
        "basin": station.basin if station else "",
        "river": station.river if station else "",
        "water_body": station.water_body if station else "",
        "place": _place(event, words),
        "parameter": event.parameter or "",
        "parameter_name": words.item_name(event.parameter) if event.parameter else "",
        "water_class": event.water_class or "",
        "target_class": _target_class(event),
        "primary_pollutants": words.pollutants(event.primary_pollutants),
        "values": words.values(event.values),
        "starts_at": _time(event.starts_at, zone),
        "ends_at": _time(event.ends_at, zone),
        "event_at": _time(event.event_at, zone),
        "link": primary_link(event.links),
        "reminder": words.reminder if event.reminder else "",
    }
    fields = {k: v if v or k in _KEEP_EMPTY else MISSING for k, v in fields.items()}
    lines = _details(event, kind, fields, words)
    fields["details"] = "\n".join(
        template.detail_line.format_map({"label": words.detail[label], "value": value})
        for label, value in lines
    )
    return fields


@dataclass(frozen=True, slots=True)
class Wording:
    """The words of one language: status, severity and change labels, detail labels, item names."""

    language: Language
    status: Mapping[str, str]  # firing, resolved, reminder
    severity: Mapping[str, str]
    change: Mapping[str, str]  # the `change` annotation's values
    detail: Mapping[str, str]  # the label of each line of `details`
    region: Mapping[str, str]  # the name of each region label
    reminder: str
    no_valid_data: str

    def status_label(self, event: AlertEvent) -> str:
        if event.reminder and event.status == "firing" and "reminder" in self.status:
            return self.status["reminder"]
        return self.status[event.status]

    def headline(self, event: AlertEvent, kind: str, severity: str, change: str) -> str:
        """What happened, in a few words: the title's bracket."""
        if self.language == "en":
            if event.status == "resolved":
                return "RESOLVED"
            if change:
                return f"{change.upper()} TO {severity.upper()}"
            return "NO VALID DATA" if kind == "data" else "FIRING"
        noun = {"data": "数据异常", "region": "区域告警"}.get(kind, "告警")
        if event.status == "resolved":
            return {"data": "数据已恢复", "region": "区域告警已恢复"}.get(kind, "已恢复")
        if change:
            return f"{'' if kind == 'water' else noun}{change}为{severity}"
        if event.reminder:
            return f"提醒：{noun}仍未恢复（{severity}）"
        return f"{noun}·{severity}"

    def item_name(self, code: str) -> str:
        """The standard's name of an item (氨氮, ammonia nitrogen); the code for any other."""
        item = default_standard().items.get(code)
        if item is None:
            return code
        return item.name_zh if self.language == "zh" else item.name_en

    def pollutants(self, codes: Sequence[str]) -> str:
        """`nh3n, tp` in English (codes, as before); `氨氮、总磷` in Chinese."""
        if self.language == "en":
            return ", ".join(codes)
        return "、".join(self.item_name(code) for code in codes)

    def values(self, values: Mapping[str, float]) -> str:
        """`nh3n=1.81, nh3n_high=1` in English; `氨氮 1.81 mg/L，氨氮上限 1 mg/L` in Chinese."""
        if self.language == "en":
            return ", ".join(f"{code}={_number(v)}" for code, v in values.items())
        return "，".join(self._value_zh(code, v) for code, v in values.items())

    def _value_zh(self, code: str, value: float) -> str:
        standard = default_standard()
        item, suffix = code, ""
        for ending, word in (("_high", "上限"), ("_low", "下限")):
            if (
                code not in standard.items
                and code.endswith(ending)
                and code[: -len(ending)] in standard.items
            ):
                item, suffix = code[: -len(ending)], word
        if item in standard.items:
            unit = standard.unit_of(item)
            shown = f"{_number(value)} {unit}" if unit != "1" else _number(value)
            return f"{self.item_name(item)}{suffix} {shown}"
        if code in _VALUE_NAMES_ZH:
            name, percent = _VALUE_NAMES_ZH[code]
            return f"{name} {_number(value * 100)}%" if percent else f"{name} {_number(value)}"
        return f"{code}={_number(value)}"


# Names of the values the rules report that are no item of the standard: (name, shown as a percentage).
_VALUE_NAMES_ZH: Final[Mapping[str, tuple[str, bool]]] = {
    "share_meeting_target": ("达标比例", True),
    "compliance_rate": ("达标率", True),
    "good_share": ("优良（I–III类）比例", True),
    "stations": ("点位数", False),
    "assessed": ("参评点位数", False),
    "meeting_target": ("达标点位数", False),
    "silent_minutes": ("无数据时长（分钟）", False),
    "threshold_minutes": ("阈值（分钟）", False),
}

WORDING: Final[Mapping[Language, Wording]] = {
    "zh": Wording(
        language="zh",
        status={"firing": "告警", "resolved": "已恢复", "reminder": "提醒"},
        severity={"critical": "严重", "warning": "警告", "info": "提示"},
        change={"escalated": "升级", "deescalated": "降级"},
        detail={
            "station": "站点",
            "where": "位置",
            "region": "区域",
            "severity": "级别",
            "problem": "异常",
            "parameter": "指标",
            "class": "水质类别",
            "pollutants": "主要污染指标",
            "values": "监测值",
            "started": "开始时间",
            "ended": "结束时间",
            "silenced": "已静默",
            "acknowledged": "已确认",
        },
        region={"district": "区县", "basin": "流域", "river": "河流"},
        reminder="（提醒）",
        no_valid_data="无有效数据",
    ),
    # What ecowatch sent before it spoke Chinese (status FIRING / RESOLVED, codes, `code=value`).
    "en": Wording(
        language="en",
        status={"firing": "FIRING", "resolved": "RESOLVED"},
        severity={"critical": "critical", "warning": "warning", "info": "info"},
        change={"escalated": "escalated", "deescalated": "de-escalated"},
        detail={
            "station": "Station",
            "where": "Where",
            "region": "Region",
            "severity": "Severity",
            "problem": "Problem",
            "parameter": "Item",
            "class": "Class",
            "pollutants": "Primary pollutants",
            "values": "Values",
            "started": "Started",
            "ended": "Ended",
            "silenced": "Silenced by",
            "acknowledged": "Acknowledged by",
        },
        region={"district": "district", "basin": "basin", "river": "river"},
        reminder=" (reminder)",
        no_valid_data="no valid data",
    ),
}


def _kind_of(event: AlertEvent) -> Literal["water", "data", "region"]:
    """data: a no-valid-data alert; region: a regional alert (no station); water: the others."""
    if event.kind == DATA_KIND or event.labels.get("category") == "data":
        return "data"
    return "region" if _region(event) is not None else "water"


def _region(event: AlertEvent) -> tuple[str, str] | None:
    """(label, value) of a regional alert's region (`district: 渝中区`); None for a station's alert."""
    if event.station is not None or event.labels.get("station_id"):
        return None
    return next(((k, event.labels[k]) for k in _REGION_LABELS if event.labels.get(k)), None)


def _place(event: AlertEvent, words: Wording) -> str:
    region = _region(event)
    if region is not None:
        return f"{words.region[region[0]]} {region[1]}"
    return event.station.name if event.station else event.labels.get("station_id", "")


def _target_class(event: AlertEvent) -> str:
    if event.target_class:
        return event.target_class
    return event.station.target_class if event.station and _region(event) is None else ""


def _details(
    event: AlertEvent, kind: str, fields: Mapping[str, str], words: Wording
) -> list[tuple[str, str]]:
    """(label, value) of each line that fits the event, in reading order."""
    lines: list[tuple[str, str]] = []
    if kind == "region":
        lines.append(("region", fields["place"]))
    elif event.station is not None:
        name, code = fields["station_name"], fields["station_id"]
        lines.append(("station", f"{name}（{code}）" if words.language == "zh" else f"{name} ({code})"))
        lines.append(("where", " · ".join(fields[k] for k in ("district", "river", "basin"))))
    elif fields["station_id"] != MISSING:
        lines.append(("station", fields["station_id"]))
    lines.append(("severity", fields["severity_label"]))
    if kind == "data":
        lines.append(("problem", words.no_valid_data))
    if event.parameter:
        lines.append(("parameter", fields["parameter_name"]))
    if kind != "data" and (event.water_class or fields["target_class"] != MISSING):
        lines.append(("class", _class_text(fields["water_class"], fields["target_class"], words)))
    if kind != "data" and event.primary_pollutants:
        lines.append(("pollutants", fields["primary_pollutants"]))
    if event.values:
        lines.append(("values", fields["values"]))
    lines.append(("started", fields["starts_at"]))
    if event.ends_at is not None:
        lines.append(("ended", fields["ends_at"]))
    for name in ("silenced", "acknowledged"):
        if event.annotations.get(f"{name}_by"):
            lines.append((name, event.annotations[f"{name}_by"]))
    return lines


def _class_text(water_class: str, target_class: str, words: Wording) -> str:
    if words.language == "en":
        return f"{water_class} (target {target_class})"
    shown = f"{water_class}类" if water_class != MISSING else MISSING
    return f"{shown}（目标类别 {target_class}类）" if target_class != MISSING else shown


def primary_link(links: Mapping[str, str]) -> str:
    for name in _LINK_ORDER:
        if links.get(name):
            return links[name]
    return next(iter(links.values()), "")


def _summary(event: AlertEvent, words: Wording) -> str:
    summary = event.annotations.get("summary", "").removeprefix(_RESOLVED_PREFIX)
    if summary:
        return summary
    name = words.item_name(event.parameter) if event.parameter else ""
    parts = [event.rule, event.station.name if event.station else "", name]
    return " ".join(p for p in parts if p)


def _zone(event: AlertEvent, default: str) -> tzinfo:
    """The zone the event names (annotation or label `timezone`), else `default`."""
    for name in (event.annotations.get("timezone"), event.labels.get("timezone"), default):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo(DEFAULT_TIMEZONE)


def _time(moment: datetime | None, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime(TIME_FORMAT) if moment else ""


def _number(value: float) -> str:
    return f"{value:.4g}"
