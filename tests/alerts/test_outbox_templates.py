"""Message templates: Chinese by default, English on request; events, digests, bad templates, size limits."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from alerts.templates import (
    MARKDOWN_TEMPLATES,
    MessageTemplate,
    Notification,
    event_fields,
    render,
    render_parts,
)
from tests.alerts.notifiers.fake_receiver import T0, make_event

SUMMARY = "嘉陵江 磁器口：氨氮超过III类标准"


def test_event_renders_in_chinese_by_default() -> None:
    """The default message is Chinese: status and severity, station, item, class, pollutants, values, local times."""
    title, text = render(MessageTemplate(), Notification((make_event(1),), T0))

    assert title == f"【告警·警告】{SUMMARY} (#1)"
    assert text.splitlines() == [
        f"### 【告警·警告】{SUMMARY} (#1)",
        "- 站点：嘉陵江 磁器口（cq-jl-001）",
        "- 位置：沙坪坝区 · 嘉陵江 · 长江",
        "- 级别：警告",
        "- 指标：氨氮",
        "- 水质类别：V类（目标类别 III类）",
        "- 主要污染指标：氨氮",
        "- 监测值：氨氮 1.81 mg/L",
        "- 开始时间：2026-11-25 16:00",  # T0 is 08:00 UTC: 16:00 in Asia/Shanghai
        "http://127.0.0.1:8080/alerts/a1",
    ]


def test_new_fields_are_chinese_and_old_fields_still_render() -> None:
    """status_label, severity_label, change_label, parameter_name are Chinese; the fields configs use still work."""
    fields = event_fields(make_event(1, severity="critical"))

    assert (fields["status_label"], fields["severity_label"], fields["change_label"]) == ("告警", "严重", "")
    assert (fields["parameter"], fields["parameter_name"]) == ("nh3n", "氨氮")
    assert (fields["severity"], fields["status"], fields["water_class"], fields["target_class"]) == (
        "critical",
        "firing",
        "V",
        "III",
    )
    old = "[{status_label}] {station_name} ({district}) {values}, class {water_class}{reminder}\n{link}"
    _title, text = render(MessageTemplate(text=old), Notification((make_event(1),), T0))
    assert text == "[告警] 嘉陵江 磁器口 (沙坪坝区) 氨氮 1.81 mg/L, class V\nhttp://127.0.0.1:8080/alerts/a1"
    assert event_fields(make_event(1))["severity_label"] == "警告"
    assert event_fields(dataclasses.replace(make_event(1), severity="info"))["severity_label"] == "提示"


def test_resolutions_and_reminders_say_so_in_chinese() -> None:
    """A resolved event reads 已恢复 with its end; a reminder reads 提醒; the engine's old prefix is not repeated."""
    resolved = dataclasses.replace(
        make_event(1, status="resolved"), annotations={"summary": f"已恢复 / RESOLVED: {SUMMARY}"}
    )
    title, text = render(MessageTemplate(), Notification((resolved,), T0))
    again = dataclasses.replace(make_event(1), reminder=True)
    reminder = render(MessageTemplate(), Notification((again,), T0))

    assert title == f"【已恢复】{SUMMARY}"
    assert "- 结束时间：2026-11-25 16:05" in text.splitlines()
    assert "- 结束时间" not in render(MessageTemplate(), Notification((make_event(1),), T0))[1]
    assert reminder[0] == f"【提醒：告警仍未恢复（警告）】{SUMMARY} (#1)"
    assert (event_fields(again)["status_label"], event_fields(resolved)["status_label"]) == ("提醒", "已恢复")
    assert event_fields(make_event(1))["reminder"] == ""


@pytest.mark.parametrize(
    ("change", "severity", "headline", "change_label"),
    [("escalated", "critical", "升级为严重", "升级"), ("deescalated", "warning", "降级为警告", "降级")],
)
def test_severity_changes_while_firing_read_as_escalation(
    change: str, severity: str, headline: str, change_label: str
) -> None:
    """A firing event with annotation change escalated/deescalated is titled 升级为…/降级为… at its new severity."""
    event = dataclasses.replace(
        make_event(1, severity=severity), annotations={"summary": SUMMARY, "change": change}
    )
    title, text = render(MessageTemplate(), Notification((event,), T0))
    fields = event_fields(event)

    assert title == f"【{headline}】{SUMMARY}"
    assert (fields["change_label"], fields["status_label"], fields["headline"]) == (
        change_label,
        "告警",
        headline,
    )
    assert f"- 级别：{fields['severity_label']}" in text.splitlines()
    english = render(MessageTemplate(language="en"), Notification((event,), T0))[0]
    assert english == f"[{change.upper().replace('DE', 'DE-')} TO {severity.upper()}] {SUMMARY}"


def test_data_availability_alert_reads_as_no_valid_data() -> None:
    """A data_availability alert is 数据异常 (无有效数据) for its station, without water-quality class lines."""
    event = dataclasses.replace(
        make_event(1),
        kind="data_availability",
        rule="data_availability",
        labels={"rule": "data_availability", "station_id": "cq-jl-001", "category": "data"},
        annotations={"summary": "嘉陵江 磁器口：无有效数据"},
        parameter=None,
        values={},
        primary_pollutants=(),
    )
    title, text = render(MessageTemplate(), Notification((event,), T0))
    resolved = render(MessageTemplate(), Notification((dataclasses.replace(event, status="resolved"),), T0))

    assert title == "【数据异常·警告】嘉陵江 磁器口：无有效数据"
    lines = text.splitlines()
    assert "- 异常：无有效数据" in lines
    assert "- 站点：嘉陵江 磁器口（cq-jl-001）" in lines
    assert not any(line.startswith(("- 水质类别", "- 主要污染指标", "- 指标")) for line in lines)
    assert resolved[0] == "【数据已恢复】嘉陵江 磁器口：无有效数据"


def test_regional_alert_renders_its_region_without_station_fields() -> None:
    """A regional alert (no station, a district label) names its region and no station, place or class lines."""
    event = dataclasses.replace(
        make_event(1),
        kind="regional_period",
        rule="district_compliance",
        labels={"rule": "district_compliance", "district": "渝中区"},
        annotations={"summary": "渝中区：本月达标率 60%，低于 80%"},
        station=None,
        parameter=None,
        water_class=None,
        target_class=None,
        primary_pollutants=(),
        values={"share_meeting_target": 0.6},
    )
    title, text = render(MessageTemplate(), Notification((event,), T0))
    fields = event_fields(event)

    assert title == "【区域告警·警告】渝中区：本月达标率 60%，低于 80%"
    assert text.splitlines()[1:5] == [
        "- 区域：区县 渝中区",
        "- 级别：警告",
        "- 监测值：达标比例 60%",
        "- 开始时间：2026-11-25 16:00",
    ]
    assert "站点" not in text
    assert (fields["place"], fields["station_name"], fields["target_class"]) == ("区县 渝中区", "-", "-")


def test_times_follow_the_zone_the_event_names() -> None:
    """Times are local to Asia/Shanghai by default, to the event's `timezone` annotation, or the template's zone."""
    event = dataclasses.replace(make_event(1), annotations={"summary": SUMMARY, "timezone": "Asia/Urumqi"})

    assert event_fields(make_event(1))["starts_at"] == "2026-11-25 16:00"
    assert event_fields(event)["starts_at"] == "2026-11-25 14:00"
    assert event_fields(make_event(1), MessageTemplate(timezone="UTC"))["starts_at"] == "2026-11-25 08:00"


def test_english_language_keeps_the_english_set() -> None:
    """language: en gives the English templates and wording: [FIRING], Severity, class, codes and code=value."""
    template = MessageTemplate(language="en")
    title, text = render(template, Notification((make_event(1),), T0))
    again = dataclasses.replace(make_event(1), reminder=True)

    assert title == f"[FIRING] {SUMMARY} (#1)"
    for part in ("- Station: 嘉陵江 磁器口 (cq-jl-001)", "- Where: 沙坪坝区 · 嘉陵江 · 长江", "- Severity: warning",
                 "- Class: V (target III)", "- Primary pollutants: nh3n", "- Values: nh3n=1.81",
                 "- Started: 2026-11-25 16:00"):  # fmt: skip
        assert part in text.splitlines()
    assert render(template, Notification((again,), T0))[0] == f"[FIRING] {SUMMARY} (#1) (reminder)"
    resolved = render(template, Notification((make_event(1, status="resolved"),), T0))
    assert resolved[0].startswith("[RESOLVED]")
    assert "- Ended: 2026-11-25 16:05" in resolved[1].splitlines()
    digest = render(template, Notification((make_event(1), make_event(2, status="resolved")), T0))
    assert digest[0] == "2 alert notifications"
    assert digest[1].startswith("### 2 alert notifications (1 firing, 1 resolved)\n\n- [FIRING]")


def test_templates_given_are_kept_and_the_rest_follow_the_language() -> None:
    """A template given is used as written whatever the language; the ones left out are the language's."""
    template = MessageTemplate.model_validate({"language": "en", "title": "{status_label}：{summary}"})

    assert template.title == "{status_label}：{summary}"
    assert template.text == MARKDOWN_TEMPLATES["en"]["text"]
    assert MessageTemplate(title="x").digest_title == MARKDOWN_TEMPLATES["zh"]["digest_title"]
    with pytest.raises(ValidationError, match="language"):
        MessageTemplate.model_validate({"language": "fr"})


def test_digest_counts_and_lists_events_in_order() -> None:
    """A digest's title and header count firing and resolved events in Chinese; one line per event, in order."""
    events = (make_event(1), make_event(2, status="resolved"), make_event(3))
    title, text = render(MessageTemplate(), Notification(events, T0))

    assert title == "共 3 条告警通知"
    lines = text.splitlines()
    assert lines[0] == "### 共 3 条告警通知：2 条告警中，1 条已恢复"
    assert [line.split("】")[0] for line in lines[2:]] == ["- 【告警·警告", "- 【已恢复", "- 【告警·警告"]
    assert lines[3] == f"- 【已恢复】{SUMMARY} (#2) · 嘉陵江 磁器口 · 氨氮 1.82 mg/L · 2026-11-25 16:00"


@pytest.mark.parametrize(
    ("field", "template"),
    [
        ("title", "{staton_name}"),  # a typo
        ("text", "{station.name}"),  # attribute access
        ("text", "{values[0]}"),  # index access
        ("digest_title", "{station_name}"),  # an event field where only counts exist
        ("detail_line", "{station_name}"),  # detail lines take {label} and {value} only
        ("title", "{count:d}"),  # a numeric format on a text field
        ("text", "unclosed {brace"),
    ],
)
def test_bad_templates_fail_at_load(field: str, template: str) -> None:
    """Unknown fields, attribute or index access and unrenderable specs are refused when loading."""
    with pytest.raises(ValidationError, match=field):
        MessageTemplate.model_validate({field: template})


def _bytes_within(limit: int) -> Callable[[str, str], bool]:
    return lambda _title, text: len(text.encode()) <= limit


def test_a_message_that_fits_is_one_part_unchanged() -> None:
    """Within the limit, render_parts gives exactly what render gives."""
    notification = Notification((make_event(1), make_event(2)), T0)

    assert render_parts(MessageTemplate(), notification, _bytes_within(10**6)) == [
        render(MessageTemplate(), notification)
    ]


def test_digest_parts_keep_every_line_in_order_and_say_which_part() -> None:
    """A long digest becomes parts of whole lines, each within the limit, each headed with its number."""
    events = tuple(make_event(n) for n in range(100))
    parts = render_parts(MessageTemplate(), Notification(events, T0), _bytes_within(1500))

    assert len(parts) > 5
    assert all(len(text.encode()) <= 1500 for _title, text in parts)
    assert [title for title, _text in parts][:2] == [
        f"共 100 条告警通知（第 1/{len(parts)} 部分）",
        f"共 100 条告警通知（第 2/{len(parts)} 部分）",
    ]
    for number, (_title, text) in enumerate(parts, 1):
        assert text.startswith(
            f"### 共 100 条告警通知：100 条告警中，0 条已恢复（第 {number}/{len(parts)} 部分）\n\n"
        )
    lines = [line for _title, text in parts for line in text.splitlines()[2:]]
    assert lines == render(MessageTemplate(), Notification(events, T0))[1].splitlines()[2:]


def test_part_numbers_of_many_digits_still_fit() -> None:
    """With more than nine parts the wider numbers are reserved in every part: none exceeds the limit."""
    events = tuple(make_event(n) for n in range(300))
    parts = render_parts(MessageTemplate(), Notification(events, T0), _bytes_within(700))

    assert len(parts) >= 10
    assert all(len(text.encode()) <= 700 for _title, text in parts)
    assert parts[-1][0].endswith(f"（第 {len(parts)}/{len(parts)} 部分）")


def test_a_single_event_too_long_is_split_and_a_huge_line_split_at_characters() -> None:
    """An event whose description alone passes the limit is split between parts at character boundaries."""
    description = "长江" * 2000
    event = dataclasses.replace(make_event(1), annotations={"summary": "big", "description": description})
    template = MessageTemplate(text="### {summary}\n{description}\n{link}")
    parts = render_parts(template, Notification((event,), T0), _bytes_within(1000))

    assert len(parts) > 10
    assert all(len(text.encode()) <= 1000 for _title, text in parts)
    assert all(
        text.startswith(f"### big（第 {n}/{len(parts)} 部分）") for n, (_t, text) in enumerate(parts, 1)
    )
    pieces = ["\n".join(text.splitlines()[1:]) for _title, text in parts]
    assert "".join(pieces[:-1]) == description
    assert pieces[-1] == "http://127.0.0.1:8080/alerts/a1"


def test_part_note_is_a_template_field_checked_at_load() -> None:
    """part_note takes {part} and {parts} only."""
    MessageTemplate(part_note=" [{part}/{parts}]")
    with pytest.raises(ValidationError, match="part_note"):
        MessageTemplate(part_note="{count}")
