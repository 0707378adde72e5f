"""The outbox against a real Prometheus Alertmanager: alerts appear with their labels, and resolve."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from tests.alerts.notifiers.fake_receiver import FakeClock, insert_events, make_event
from tests.helpers import wait_for
from tests.servers import AlertmanagerServer

pytestmark = pytest.mark.integration


def _dispatcher(
    tmp_path: Path, alertmanager: AlertmanagerServer, clock: Callable[[], datetime]
) -> NotificationDispatcher:
    config = NotifyConfig.model_validate(
        {
            "receivers": [
                {"type": "alertmanager", "name": "am", "url": alertmanager.url, "resend_interval": "PT1M"}
            ]
        }
    )
    return NotificationDispatcher(config, tmp_path / "alerts.db", clock=clock)


def _labels(parameter: str) -> dict[str, str]:
    return {"rule": "exceedance", "station_id": "cq-jl-001", "parameter": parameter}


def test_pushed_alerts_appear_with_labels_and_resolve(
    tmp_path: Path, alertmanager: AlertmanagerServer
) -> None:
    """Firing alerts show in /api/v2/alerts with our labels and annotations; a resolved one leaves it."""
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now)
    dispatcher = _dispatcher(tmp_path, alertmanager, clock)
    db = tmp_path / "alerts.db"
    started = now - timedelta(minutes=5)
    # Alertmanager identifies an alert by its label set: the two differ in their parameter.
    events = [
        make_event(n, at=started, labels=_labels(parameter)) for n, parameter in ((1, "nh3n"), (2, "codmn"))
    ]
    insert_events(db, events, created=now)

    dispatcher.run_once(now)
    wait_for(lambda: len(alertmanager.alerts()) == 2, "both alerts in Alertmanager", 10.0)
    alerts = {a["annotations"]["notification_key"]: a for a in alertmanager.alerts()}
    first = alerts["a1:1"]
    assert first["labels"] == {
        "alertname": "exceedance",
        "severity": "warning",
        "station_id": "cq-jl-001",
        "district": "沙坪坝区",
        "basin": "长江",
        "river": "嘉陵江",
        "rule": "exceedance",
        "parameter": "nh3n",
    }
    assert first["annotations"]["values"] == "nh3n=1.81"
    assert first["status"]["state"] == "active"
    assert first["generatorURL"] == "http://127.0.0.1:8080/alerts/a1"
    ends_at = datetime.fromisoformat(first["endsAt"].replace("Z", "+00:00"))
    assert now + timedelta(minutes=3) < ends_at <= now + timedelta(minutes=4, seconds=1)

    # a1 resolves: Alertmanager no longer lists it as active, a2 stays.
    insert_events(
        db, [make_event(1, seq=2, status="resolved", at=started, labels=_labels("nh3n"))], created=now
    )
    clock.advance(1)
    dispatcher.run_once(clock())
    wait_for(lambda: len(alertmanager.alerts()) == 1, "one alert in Alertmanager", 10.0)
    (remaining,) = alertmanager.alerts()
    assert remaining["annotations"]["notification_key"] == "a2:1"
    assert [(d["key"], d["state"]) for d in dispatcher.deliveries()] == [
        ("a1:1", "delivered"),
        ("a2:1", "delivered"),
        ("a1:2", "delivered"),
    ]
    dispatcher.stop(2.0)


def test_resend_moves_ends_at_forward(tmp_path: Path, alertmanager: AlertmanagerServer) -> None:
    """Re-sending a firing alert before its endsAt pushes endsAt on, so Alertmanager keeps it active."""
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now)
    dispatcher = _dispatcher(tmp_path, alertmanager, clock)
    insert_events(tmp_path / "alerts.db", [make_event(1, at=now - timedelta(minutes=1))], created=now)

    dispatcher.run_once(now)
    wait_for(lambda: len(alertmanager.alerts()) == 1, "one alert in Alertmanager", 10.0)
    before = alertmanager.alerts()[0]["endsAt"]
    dispatcher.run_once(clock.advance(61))  # the re-send is due after one interval

    wait_for(lambda: alertmanager.alerts()[0]["endsAt"] != before, "endsAt to move on", 10.0)
    after = alertmanager.alerts()[0]
    assert datetime.fromisoformat(after["endsAt"].replace("Z", "+00:00")) == now + timedelta(
        minutes=5, seconds=1
    )
    assert after["status"]["state"] == "active"
    dispatcher.stop(2.0)
