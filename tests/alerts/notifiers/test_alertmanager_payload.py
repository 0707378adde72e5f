"""The Alertmanager notifier's request: /api/v2/alerts, labels, annotations and endsAt rules."""

from __future__ import annotations

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
    """Labels: alertname, severity, station and the event's labels made valid; values are annotations."""
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
