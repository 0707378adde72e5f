"""The DingTalk custom robot: markdown message, timestamp+secret signature, errcode verdicts."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

import pytest

from alerts.notifiers import DeliveryError, DeliveryReason, Notification
from alerts.notifiers.dingtalk import THROTTLE_RETRY_AFTER_SECONDS, DingTalkConfig, DingTalkNotifier
from alerts.ratelimit import RateLimitConfig
from tests.alerts.notifiers.fake_receiver import STATION, T0, Answer, FakeReceiver, make_event

TOKEN = "dingtalk-access-token-0123456789"
SECRET = "SEC0123456789abcdefdingtalk-secret"
OK = Answer.json(200, {"errcode": 0, "errmsg": "ok"})


def _notifier(receiver: FakeReceiver, **overrides: object) -> DingTalkNotifier:
    fields: dict[str, object] = {
        "name": "duty",
        "access_token": TOKEN,
        "secret": SECRET,
        "base_url": f"{receiver.url}/robot/send",
        **overrides,
    }
    return DingTalkNotifier(DingTalkConfig.model_validate(fields))


def test_signature_recomputed_from_the_query_matches(receiver: FakeReceiver) -> None:
    """timestamp is the attempt in ms; sign is base64 HMAC-SHA256(secret, "timestamp\\nsecret")."""
    receiver.script(OK)
    _notifier(receiver).send(Notification((make_event(1),), T0))

    (request,) = receiver.requests
    assert request.path == "/robot/send"
    assert request.query["access_token"] == TOKEN
    timestamp = request.query["timestamp"]
    assert timestamp == str(int(T0.timestamp() * 1000))
    string_to_sign = f"{timestamp}\n{SECRET}".encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), string_to_sign, hashlib.sha256).digest()).decode()
    # parse_qs has already URL-decoded the parameter once, as DingTalk does.
    assert request.query["sign"] == expected


def test_without_secret_the_url_carries_only_the_token(receiver: FakeReceiver) -> None:
    """A robot without 加签 gets no timestamp or sign parameters."""
    receiver.script(OK)
    _notifier(receiver, secret=None).send(Notification((make_event(1),), T0))

    assert receiver.requests[0].query == {"access_token": TOKEN}


def test_message_is_markdown_with_title_and_mentions(receiver: FakeReceiver) -> None:
    """The body is a markdown message naming the station and values, with @mobile in text and at."""
    receiver.script(OK)
    _notifier(receiver, at_mobiles=["13800000000"]).send(Notification((make_event(1),), T0))

    body = receiver.requests[0].json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("[FIRING]")
    text = body["markdown"]["text"]
    assert STATION.name in text
    assert "nh3n=1.81" in text
    assert text.endswith("@13800000000")
    assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}


def test_digest_lists_every_event(receiver: FakeReceiver) -> None:
    """A digest's markdown counts the events and has one line per event."""
    receiver.script(OK)
    events = tuple(make_event(n) for n in range(4))
    _notifier(receiver).send(Notification(events, T0))

    body = receiver.requests[0].json()
    assert body["markdown"]["title"] == "4 alert notifications"
    assert "4 alert notifications (4 firing, 0 resolved)" in body["markdown"]["text"]
    assert body["markdown"]["text"].count("\n- [FIRING]") == 4


@pytest.mark.parametrize(
    ("answer", "reason", "retryable", "retry_after"),
    [
        (
            Answer.json(200, {"errcode": 130101, "errmsg": "send too fast"}),
            DeliveryReason.THROTTLED,
            True,
            600.0,
        ),
        (
            Answer.json(200, {"errcode": 410100, "errmsg": "send too fast"}),
            DeliveryReason.THROTTLED,
            True,
            600.0,
        ),
        (Answer.json(200, {"errcode": -1, "errmsg": "system busy"}), DeliveryReason.ROBOT_ERROR, True, None),
        (
            Answer.json(200, {"errcode": 310000, "errmsg": "sign not match"}),
            DeliveryReason.ROBOT_ERROR,
            False,
            None,
        ),
        (
            Answer.json(200, {"errcode": 300001, "errmsg": "token is not exist"}),
            DeliveryReason.ROBOT_ERROR,
            False,
            None,
        ),
        (Answer(200, b"<html>proxy</html>"), DeliveryReason.ROBOT_ERROR, True, None),
        (Answer(502, b"bad gateway"), DeliveryReason.UNAVAILABLE, True, None),
    ],
)
def test_errcode_in_a_200_answer_decides(
    receiver: FakeReceiver, answer: Answer, reason: DeliveryReason, retryable: bool, retry_after: float | None
) -> None:
    """HTTP 200 is not success: errcode 0 is; rate-limit and busy codes retry, other codes are final."""
    receiver.script(answer)
    with pytest.raises(DeliveryError) as caught:
        _notifier(receiver).send(Notification((make_event(1),), T0))

    assert (caught.value.reason, caught.value.retryable, caught.value.retry_after) == (
        reason,
        retryable,
        retry_after,
    )
    assert THROTTLE_RETRY_AFTER_SECONDS == 600.0


def test_default_rate_limit_is_twenty_a_minute() -> None:
    """The robot's 20 messages a minute is the receiver's default rate limit."""
    config = DingTalkConfig.model_validate({"name": "duty", "access_token": TOKEN})

    assert config.rate_limit == RateLimitConfig(messages=20, per=timedelta(minutes=1))


def test_long_digest_is_cut_to_the_robot_limit(receiver: FakeReceiver) -> None:
    """A digest past the robot's size limit keeps whole lines and says how many were cut."""
    receiver.script(OK)
    events = tuple(make_event(n) for n in range(400))
    _notifier(receiver).send(Notification(events, T0))

    text = receiver.requests[0].json()["markdown"]["text"]
    assert len(text.encode()) <= 19_000
    assert text.splitlines()[-1].endswith("more lines cut)")
