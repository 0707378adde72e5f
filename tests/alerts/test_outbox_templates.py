"""Message templates: rendering an event and a digest, refusing bad templates, splitting to a size limit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from alerts.templates import MessageTemplate, Notification, event_fields, render, render_parts
from tests.alerts.notifiers.fake_receiver import T0, make_event


def test_event_renders_every_documented_field() -> None:
    """The default text names station, place, severity, class, pollutants, values, times and link."""
    title, text = render(MessageTemplate(), Notification((make_event(1),), T0))

    assert title == "[FIRING] NH3-N above class III at 嘉陵江 磁器口 (#1)"
    for part in ("嘉陵江 磁器口 (cq-jl-001)", "沙坪坝区 · 嘉陵江 · 长江", "Severity: warning", "Class: V (target III)",
                 "Primary pollutants: nh3n", "Values: nh3n=1.81", "Started: 2026-11-25 08:00:00+00:00",
                 "Ended: -", "http://127.0.0.1:8080/alerts/a1"):  # fmt: skip
        assert part in text


def test_reminders_and_resolutions_say_so() -> None:
    """A resolved event reads RESOLVED with its end; a reminder is marked."""
    resolved = render(MessageTemplate(), Notification((make_event(1, status="resolved"),), T0))
    again = dataclasses.replace(make_event(1), reminder=True)
    reminder = render(MessageTemplate(title="{status_label}{reminder}"), Notification((again,), T0))

    assert resolved[0].startswith("[RESOLVED]")
    assert "Ended: 2026-11-25 08:05:00+00:00" in resolved[1]
    assert event_fields(make_event(1))["reminder"] == ""
    assert reminder[0] == "FIRING (reminder)"


def test_digest_counts_and_lists_events_in_order() -> None:
    """A digest's title and header count firing and resolved events; one line per event, in order."""
    events = (make_event(1), make_event(2, status="resolved"), make_event(3))
    title, text = render(MessageTemplate(), Notification(events, T0))

    assert title == "3 alert notifications"
    lines = text.splitlines()
    assert lines[0] == "### 3 alert notifications (2 firing, 1 resolved)"
    assert [line.split("]")[0] for line in lines[2:]] == ["- [FIRING", "- [RESOLVED", "- [FIRING"]
    assert "(#2)" in lines[3]


@pytest.mark.parametrize(
    ("field", "template"),
    [
        ("title", "{staton_name}"),  # a typo
        ("text", "{station.name}"),  # attribute access
        ("text", "{values[0]}"),  # index access
        ("digest_title", "{station_name}"),  # an event field where only counts exist
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
        f"100 alert notifications（第 1/{len(parts)} 部分）",
        f"100 alert notifications（第 2/{len(parts)} 部分）",
    ]
    for number, (_title, text) in enumerate(parts, 1):
        assert text.startswith(
            f"### 100 alert notifications (100 firing, 0 resolved)（第 {number}/{len(parts)} 部分）\n\n"
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
