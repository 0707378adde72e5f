"""The DingTalk custom robot: markdown message, timestamp+secret signature, errcode verdicts."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from datetime import timedelta

import pytest
from pydantic import ValidationError

from alerts.notifiers import DeliveryError, DeliveryReason, Notification
from alerts.notifiers.dingtalk import MAX_BODY_BYTES, DingTalkConfig, DingTalkNotifier
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
    assert body["markdown"]["title"].startswith("【告警·警告】")
    text = body["markdown"]["text"]
    assert STATION.name in text
    assert "- 监测值：氨氮 1.81 mg/L" in text
    assert text.endswith("@13800000000")
    assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}


def test_language_en_keeps_the_english_text(receiver: FakeReceiver) -> None:
    """A receiver whose template says `language: en` gets the English set: [FIRING], Severity, code=value."""
    receiver.script(OK)
    _notifier(receiver, template={"language": "en"}).send(Notification((make_event(1),), T0))

    markdown = receiver.requests[0].json()["markdown"]
    assert markdown["title"].startswith("[FIRING]")
    assert "- Severity: warning" in markdown["text"].splitlines()
    assert "- Values: nh3n=1.81" in markdown["text"].splitlines()


def test_digest_lists_every_event(receiver: FakeReceiver) -> None:
    """A digest's markdown counts the events and has one line per event."""
    receiver.script(OK)
    events = tuple(make_event(n) for n in range(4))
    _notifier(receiver).send(Notification(events, T0))

    body = receiver.requests[0].json()
    assert body["markdown"]["title"] == "共 4 条告警通知"
    assert "共 4 条告警通知：4 条告警中，0 条已恢复" in body["markdown"]["text"]
    assert body["markdown"]["text"].count("\n- 【告警·警告】") == 4


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


def test_default_rate_limit_stays_below_the_robots_twenty_a_minute() -> None:
    """18 a sliding minute by default (10 % below the robot's 20); more than 20 is refused at load."""
    config = DingTalkConfig.model_validate({"name": "duty", "access_token": TOKEN})

    assert config.rate_limit == RateLimitConfig(messages=18, per=timedelta(minutes=1))
    assert config.throttle_pause == timedelta(minutes=10)
    DingTalkConfig.model_validate(
        {"name": "duty", "access_token": TOKEN, "rate_limit": {"messages": 20, "per": "PT1M"}}
    )
    for too_many in ({"messages": 21, "per": "PT1M"}, {"messages": 20, "per": "PT30S"}, None):
        with pytest.raises(ValidationError):
            DingTalkConfig.model_validate({"name": "duty", "access_token": TOKEN, "rate_limit": too_many})


def test_throttle_pause_is_the_configured_retry_after(receiver: FakeReceiver) -> None:
    """A 130101 answer asks the outbox to wait `throttle_pause`, 600 s unless configured."""
    receiver.default = Answer.json(
        200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
    )
    with pytest.raises(DeliveryError) as caught:
        _notifier(receiver, throttle_pause="PT15M").send(Notification((make_event(1),), T0))

    assert caught.value.retry_after == 900.0


def test_long_digest_is_split_into_parts_within_the_limit_never_cut(receiver: FakeReceiver) -> None:
    """A digest past 20 000 bytes becomes parts of whole lines, each within the limit, together every line."""
    receiver.default = OK
    notifier = _notifier(receiver, at_mobiles=["13800000000"])
    digest = Notification(tuple(make_event(n) for n in range(400)), T0)
    parts = notifier.count_parts(digest)
    for part in range(parts):
        notifier.send(dataclasses.replace(digest, part=part, parts=parts))

    assert parts > 2
    bodies = [r.json() for r in receiver.requests]
    assert all(len(r.body) <= MAX_BODY_BYTES for r in receiver.requests)
    lines = [
        line for b in bodies for line in b["markdown"]["text"].splitlines() if line.startswith("- 【告警")
    ]
    assert [line.split("(#")[1].split(")")[0] for line in lines] == [str(n) for n in range(400)]
    assert [b["markdown"]["title"] for b in bodies][:2] == [
        f"共 400 条告警通知（第 1/{parts} 部分）",
        f"共 400 条告警通知（第 2/{parts} 部分）",
    ]
    assert all(b["markdown"]["text"].endswith("@13800000000") for b in bodies)
    assert [r.header("Idempotency-Key") for r in receiver.requests] == [
        f"{digest.key}#{p + 1}/{parts}" for p in range(parts)
    ]
