"""Configurations that cannot work as meant are caught at start-up: refused at load, or warned about."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from alerts.notifiers.alertmanager import to_alert
from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from tests.alerts.notifiers.channel_receiver import every_channel
from tests.alerts.notifiers.fake_receiver import T0, FakeClock, FakeReceiver, insert_events, make_event

URL = "http://127.0.0.1:9"


def _warnings(config: NotifyConfig, tmp_path: Path) -> list[tuple[str, str]]:
    with capture_logs() as logs:
        NotificationDispatcher(config, tmp_path / "alerts.db", clock=FakeClock()).stop(1.0)
    return [(e["receivers"], e["problem"]) for e in logs if e["event"] == "notify_config_warning"]


def test_without_external_url_start_up_warns_and_names_the_receivers(tmp_path: Path) -> None:
    """No external_url: a warning naming every receiver (links stay relative), and Alertmanager's own."""
    config = NotifyConfig.model_validate({"receivers": every_channel(URL)})

    assert _warnings(config, tmp_path) == [
        (
            "platform, am, duty, basin, ops",
            "external_url is not set: links in messages stay relative to this ecowatch",
        ),
        ("am", "external_url is not set: alerts go without generatorURL"),
    ]
    with_url = NotifyConfig.model_validate(
        {"receivers": every_channel(URL), "external_url": "https://e.example"}
    )
    assert _warnings(with_url, tmp_path) == []


def test_alertmanager_gets_no_relative_generator_url() -> None:
    """A relative link would open on Alertmanager's host: it is left out, an absolute one kept."""
    relative = dataclasses.replace(make_event(1), links={"alert": "/api/v1/alerts?alert_id=a1"})

    assert "generatorURL" not in to_alert(relative, T0, timedelta(minutes=1))
    assert (
        to_alert(make_event(1), T0, timedelta(minutes=1))["generatorURL"] == "http://127.0.0.1:8080/alerts/a1"
    )


def test_with_external_url_alertmanager_gets_the_absolute_link(tmp_path: Path) -> None:
    """external_url makes the engine's relative link absolute, and Alertmanager gets it as generatorURL."""
    receiver = FakeReceiver().start()
    try:
        config = NotifyConfig.model_validate(
            {
                "receivers": [{"type": "alertmanager", "name": "am", "url": receiver.url}],
                "external_url": "https://ecowatch.example/",
            }
        )
        clock = FakeClock()
        dispatcher = NotificationDispatcher(config, tmp_path / "alerts.db", clock=clock)
        event = dataclasses.replace(make_event(1), links={"alert": "/api/v1/alerts?alert_id=a1"})
        insert_events(tmp_path / "alerts.db", [event])
        dispatcher.run_once(clock())

        (alert,) = receiver.requests[0].json()
        assert alert["generatorURL"] == "https://ecowatch.example/api/v1/alerts?alert_id=a1"
        dispatcher.stop(1.0)
    finally:
        receiver.stop()


@pytest.mark.parametrize("kind", ["dingtalk", "wecom"])
def test_a_robot_rate_limit_above_the_robots_is_refused_at_load(kind: str) -> None:
    """More than the robot's 20 a minute would get it throttled: the configuration does not load."""
    receivers = [r for r in every_channel(URL) if r["type"] == kind]
    receivers[0]["rate_limit"] = {"messages": 40, "per": "PT1M"}

    with pytest.raises(ValidationError, match="20 messages a minute"):
        NotifyConfig.model_validate({"receivers": receivers})
