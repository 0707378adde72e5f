"""Message templates: rendering an event and a digest, refusing bad templates, cutting to a byte limit."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from alerts.templates import MessageTemplate, Notification, event_fields, render, truncate_utf8
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


def test_truncate_keeps_whole_lines_and_counts_the_rest() -> None:
    """Cutting to a byte limit keeps whole UTF-8 lines and ends with how many lines were cut."""
    text = "\n".join(f"第{n}行 station 嘉陵江" for n in range(100))
    cut = truncate_utf8(text, 500)

    assert len(cut.encode()) <= 500
    kept, note = cut.splitlines()[:-1], cut.splitlines()[-1]
    assert kept == text.splitlines()[: len(kept)]
    assert note == f"… ({100 - len(kept)} more lines cut)"
    assert truncate_utf8(text, 10**6) == text


def test_truncate_cuts_inside_a_single_long_line_at_a_character_boundary() -> None:
    """A single line longer than the limit is cut at a UTF-8 character boundary with an ellipsis."""
    cut = truncate_utf8("长江" * 1000, 100)

    assert len(cut.encode()) <= 100
    assert cut.endswith("…")
    assert cut.startswith("长江长江")
