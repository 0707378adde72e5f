"""Channel behaviour that needs the outbox: robot errcodes retried, Alertmanager's firing set re-sent."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from tests.alerts.notifiers.fake_receiver import Answer, FakeClock, FakeReceiver, insert_events, make_event

OK = Answer.json(200, {"errcode": 0, "errmsg": "ok"})


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    """A running receiver answering like a robot that accepted the message."""
    server = FakeReceiver(OK).start()
    yield server
    server.stop()


def _dispatcher(tmp_path: Path, receiver_config: dict[str, Any], clock: FakeClock) -> NotificationDispatcher:
    config = NotifyConfig.model_validate({"receivers": [receiver_config]})
    return NotificationDispatcher(config, tmp_path / "alerts.db", clock=clock, rng=random.Random(5))


def test_dingtalk_rate_limit_errcode_is_retried_after_the_throttle(
    tmp_path: Path, receiver: FakeReceiver
) -> None:
    """errcode 130101 in a 200 answer is not success: the message is retried after the 10-minute throttle."""
    receiver.script(Answer.json(200, {"errcode": 130101, "errmsg": "send too fast"}))
    clock = FakeClock()
    dispatcher = _dispatcher(
        tmp_path,
        {"type": "dingtalk", "name": "duty", "access_token": "t" * 20, "base_url": receiver.url},
        clock,
    )
    insert_events(tmp_path / "alerts.db", [make_event(1)])

    dispatcher.run_once(clock())
    dispatcher.run_once(clock.advance(599))
    assert len(receiver.requests) == 1
    dispatcher.run_once(clock.advance(2))

    assert len(receiver.requests) == 2
    assert [(d["state"], d["attempts"]) for d in dispatcher.deliveries()] == [("delivered", 2)]
    dispatcher.stop(1.0)


def test_wecom_errcodes_retried_or_final(tmp_path: Path, receiver: FakeReceiver) -> None:
    """45009 is retried until accepted; 93000 (bad key) fails the delivery at once."""
    receiver.script(
        Answer.json(200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
        Answer.json(200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
    )
    clock = FakeClock()
    dispatcher = _dispatcher(
        tmp_path, {"type": "wecom", "name": "duty", "webhook_key": "k" * 20, "base_url": receiver.url}, clock
    )
    insert_events(tmp_path / "alerts.db", [make_event(1)])
    for _ in range(4):
        dispatcher.run_once(clock.advance(61))
    receiver.script(Answer.json(200, {"errcode": 93000, "errmsg": "invalid webhook url"}))
    insert_events(tmp_path / "alerts.db", [make_event(2)])
    dispatcher.run_once(clock.advance(61))

    assert len(receiver.requests) == 4
    assert [(d["key"], d["state"], d["attempts"]) for d in dispatcher.deliveries()] == [
        ("a1:1", "delivered", 3),
        ("a2:1", "failed", 1),
    ]
    assert dispatcher.stats()["duty"]["last_error"] == "robot_error: errcode 93000: invalid webhook url"
    dispatcher.stop(1.0)


def test_alertmanager_firing_set_is_resent_until_resolved(tmp_path: Path, receiver: FakeReceiver) -> None:
    """A firing alert is re-sent every resend_interval with endsAt moved on; once resolved, no more."""
    receiver.default = Answer(200, b"")
    db = tmp_path / "alerts.db"
    clock = FakeClock()
    dispatcher = _dispatcher(
        tmp_path,
        {"type": "alertmanager", "name": "am", "url": receiver.url, "resend_interval": "PT1M"},
        clock,
    )
    insert_events(db, [make_event(1, seq=1), make_event(2, seq=1)])
    dispatcher.run_once(clock())  # two event posts, and the re-send due at start
    assert len(receiver.requests) == 3
    assert dispatcher.stats()["am"]["firing"] == 2

    dispatcher.run_once(clock.advance(30))
    assert len(receiver.requests) == 3  # not due yet
    dispatcher.run_once(clock.advance(31))
    resend = receiver.requests[-1].json()
    assert [a["labels"]["alertname"] for a in resend] == ["exceedance", "exceedance"]
    assert {a["endsAt"] for a in resend} == {"2026-11-25T08:05:01.000Z"}  # now + 4 min

    insert_events(db, [make_event(1, seq=2, status="resolved")])
    dispatcher.run_once(clock.advance(61))
    resolved, resend = receiver.requests[-2].json(), receiver.requests[-1].json()
    assert resolved[0]["endsAt"] == "2026-11-25T08:05:00.000Z"
    assert [a["annotations"]["notification_key"] for a in resend] == ["a2:1"]
    assert dispatcher.stats()["am"]["firing"] == 1
    dispatcher.stop(1.0)


def test_alertmanager_resend_failure_is_recorded_and_retried(tmp_path: Path, receiver: FakeReceiver) -> None:
    """A failed re-send shows as the receiver's last error and is tried again within the interval."""
    db = tmp_path / "alerts.db"
    clock = FakeClock()
    dispatcher = _dispatcher(
        tmp_path,
        {"type": "alertmanager", "name": "am", "url": receiver.url, "resend_interval": "PT10M"},
        clock,
    )
    insert_events(db, [make_event(1)])
    receiver.script(Answer(200, b""), Answer(503, b"restarting"))
    dispatcher.run_once(clock())
    assert dispatcher.stats()["am"]["last_error"] == "unavailable: HTTP 503: restarting"

    dispatcher.run_once(clock.advance(600))  # within one interval, whatever the jitter

    assert len(receiver.requests) == 3
    assert receiver.requests[-1].answer.status == 200
    dispatcher.stop(1.0)
