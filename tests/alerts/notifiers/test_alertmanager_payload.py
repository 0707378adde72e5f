"""The Alertmanager notifier's request: /api/v2/alerts, labels, annotations and endsAt rules."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from alerts.notifiers import Notification
from alerts.notifiers.alertmanager import ENDS_AT_FACTOR, AlertmanagerConfig, AlertmanagerNotifier, to_alert
from tests.alerts.notifiers.fake_receiver import T0, FakeReceiver, make_event

INTERVAL = timedelta(minutes=1)


def test_firing_alert_ends_four_resend_intervals_ahead() -> None:
    """While firing, endsAt is now + 4 × resend_interval, so three lost re-sends do not resolve it."""
    now = T0 + timedelta(minutes=10)
    alert = to_alert(make_event(1), now, INTERVAL)

    assert alert["startsAt"] == "2026-11-25T08:00:00.000Z"
    assert alert["endsAt"] == "2026-11-25T08:14:00.000Z"
    assert ENDS_AT_FACTOR == 4


def test_resolved_alert_carries_its_real_end() -> None:
    """A resolved event is sent with the alert's own end time, in the past for Alertmanager."""
    event = make_event(1, status="resolved")
    alert = to_alert(event, T0 + timedelta(hours=1), INTERVAL)

    assert alert["endsAt"] == "2026-11-25T08:05:00.000Z"


def test_labels_identify_the_alert_and_annotations_describe_it() -> None:
    """Labels: alertname, severity, station and the event's labels made valid; values (codes) and Chinese names are annotations."""
    event = make_event(
        1, labels={"station_id": "cq-jl-001", "parameter": "nh3n", "odd-name.x": "v", "empty": ""}
    )
    alert = to_alert(event, T0, INTERVAL)

    assert alert["labels"] == {
        "alertname": "exceedance",
        "severity": "warning",
        "station_id": "cq-jl-001",
        "district": "沙坪坝区",
        "basin": "长江",
        "river": "嘉陵江",
        "parameter": "nh3n",
        "odd_name_x": "v",
    }
    assert alert["annotations"]["values"] == "nh3n=1.81"
    assert alert["annotations"]["water_class"] == "V"
    assert alert["annotations"]["primary_pollutants"] == "nh3n"
    assert (alert["annotations"]["parameter_name"], alert["annotations"]["severity_label"]) == (
        "氨氮",
        "警告",
    )
    assert alert["annotations"]["notification_key"] == event.key
    assert alert["generatorURL"] == "http://127.0.0.1:8080/alerts/a1"


def test_posts_every_alert_of_a_notification_in_one_request(receiver: FakeReceiver) -> None:
    """A digest or re-send is one POST to /api/v2/alerts listing each alert."""
    notifier = AlertmanagerNotifier(AlertmanagerConfig.model_validate({"name": "am", "url": receiver.url}))
    events = tuple(make_event(n) for n in range(3))
    notifier.send(Notification(events, T0, resend=True))

    (request,) = receiver.requests
    assert request.path == "/api/v2/alerts"
    assert [a["annotations"]["notification_key"] for a in request.json()] == [e.key for e in events]
    assert notifier.resend_interval == INTERVAL


def test_a_severity_change_travels_as_an_annotation() -> None:
    """An escalation keeps the alert's labels but for severity; the engine's `change` annotation goes along."""
    event = dataclasses.replace(
        make_event(1, severity="critical"), annotations={"summary": "s", "change": "escalated"}
    )
    alert = to_alert(event, T0, INTERVAL)

    assert alert["labels"]["severity"] == "critical"
    assert (alert["annotations"]["change"], alert["annotations"]["severity_label"]) == ("escalated", "严重")


def test_an_escalation_ends_the_alert_under_its_old_severity(receiver: FakeReceiver) -> None:
    """Severity is a label, so an escalation posts the new alert and the old label set ended at once."""
    escalated = make_event(1, severity="critical")
    escalated = dataclasses.replace(
        escalated,
        labels={**escalated.labels, "severity": "critical"},
        annotations={"summary": "s", "change": "escalated", "previous_severity": "warning"},
    )
    notifier = AlertmanagerNotifier(AlertmanagerConfig.model_validate({"name": "am", "url": receiver.url}))
    notifier.send(Notification((escalated,), T0))

    (request,) = receiver.requests
    new, old = request.json()
    assert (new["labels"]["severity"], old["labels"]["severity"]) == ("critical", "warning")
    assert {k: v for k, v in new["labels"].items() if k != "severity"} == {
        k: v for k, v in old["labels"].items() if k != "severity"
    }
    ended = dataclasses.replace(escalated, status="resolved", ends_at=escalated.event_at)
    assert old["endsAt"] == to_alert(ended, T0, INTERVAL)["endsAt"]
    assert new["endsAt"] > old["endsAt"]
