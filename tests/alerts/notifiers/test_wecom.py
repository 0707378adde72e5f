"""The WeCom group robot: markdown within 4096 bytes, the key in the URL, errcode verdicts."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from pydantic import ValidationError

from alerts.notifiers import DeliveryError, DeliveryReason, Notification
from alerts.notifiers.wecom import MAX_CONTENT_BYTES, WeComConfig, WeComNotifier
from tests.alerts.notifiers.fake_receiver import STATION, T0, Answer, FakeReceiver, make_event

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
OK = Answer.json(200, {"errcode": 0, "errmsg": "ok"})


def _notifier(receiver: FakeReceiver, **overrides: object) -> WeComNotifier:
    fields = {
        "name": "duty",
        "webhook_key": KEY,
        "base_url": f"{receiver.url}/cgi-bin/webhook/send",
        **overrides,
    }
    return WeComNotifier(WeComConfig.model_validate(fields))


def test_markdown_message_goes_to_the_key(receiver: FakeReceiver) -> None:
    """One markdown message, POSTed with the robot key as `key=`, naming station and values."""
    receiver.script(OK)
    _notifier(receiver, mention_userids=["zhangsan"]).send(Notification((make_event(1),), T0))

    (request,) = receiver.requests
    assert request.path == "/cgi-bin/webhook/send"
    assert request.query == {"key": KEY}
    body = request.json()
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith("### 【告警·警告】")
    assert STATION.name in content
    assert content.endswith("<@zhangsan>")


def test_long_content_is_split_into_parts_of_4096_bytes_never_cut(receiver: FakeReceiver) -> None:
    """A digest of many Chinese-named alerts becomes parts within 4096 bytes, near the limit, every line kept."""
    receiver.default = OK
    notifier = _notifier(receiver, mention_userids=["zhangsan"])
    digest = Notification(tuple(make_event(n) for n in range(120)), T0)
    parts = notifier.count_parts(digest)
    for part in range(parts):
        notifier.send(dataclasses.replace(digest, part=part, parts=parts))

    contents = [r.json()["markdown"]["content"] for r in receiver.requests]
    assert len(contents) == parts > 2
    assert all(len(c.encode()) <= MAX_CONTENT_BYTES for c in contents)
    assert all(len(c.encode()) > MAX_CONTENT_BYTES - 300 for c in contents[:-1])  # packed, not sparse
    assert contents[1].startswith(
        f"### 共 120 条告警通知：120 条告警中，0 条已恢复（第 2/{parts} 部分）\n\n- 【告警·警告】"
    )
    lines = [line for c in contents for line in c.splitlines() if line.startswith("- 【告警")]
    assert [line.split("(#")[1].split(")")[0] for line in lines] == [str(n) for n in range(120)]
    assert all(c.endswith("<@zhangsan>") for c in contents)


def test_default_rate_limit_and_pause() -> None:
    """18 a sliding minute (below the robot's 20, which is the most accepted); a 45009 pauses a minute."""
    config = WeComConfig.model_validate({"name": "duty", "webhook_key": KEY})

    assert (config.rate_limit.messages, config.rate_limit.per, config.throttle_pause) == (
        18,
        timedelta(minutes=1),
        timedelta(minutes=1),
    )
    with pytest.raises(ValidationError, match="20 messages a minute"):
        WeComConfig.model_validate(
            {"name": "duty", "webhook_key": KEY, "rate_limit": {"messages": 30, "per": "PT1M"}}
        )


@pytest.mark.parametrize(
    ("answer", "reason", "retryable"),
    [
        (
            Answer.json(200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
            DeliveryReason.THROTTLED,
            True,
        ),
        (Answer.json(200, {"errcode": -1, "errmsg": "system busy"}), DeliveryReason.ROBOT_ERROR, True),
        (
            Answer.json(200, {"errcode": 93000, "errmsg": "invalid webhook url"}),
            DeliveryReason.ROBOT_ERROR,
            False,
        ),
        (
            Answer.json(200, {"errcode": 40058, "errmsg": "markdown.content exceed max length"}),
            DeliveryReason.ROBOT_ERROR,
            False,
        ),
        (Answer(503, b""), DeliveryReason.UNAVAILABLE, True),
    ],
)
def test_errcode_decides(
    receiver: FakeReceiver, answer: Answer, reason: DeliveryReason, retryable: bool
) -> None:
    """45009 and -1 are retried, other error codes are final, whatever the HTTP 200 says."""
    receiver.script(answer)
    with pytest.raises(DeliveryError) as caught:
        _notifier(receiver).send(Notification((make_event(1),), T0))

    assert (caught.value.reason, caught.value.retryable) == (reason, retryable)
    assert KEY not in str(caught.value)
