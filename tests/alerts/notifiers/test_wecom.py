"""The WeCom group robot: markdown within 4096 bytes, the key in the URL, errcode verdicts."""

from __future__ import annotations

import pytest

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
    assert content.startswith("### [FIRING]")
    assert STATION.name in content
    assert content.endswith("<@zhangsan>")


def test_content_is_cut_to_4096_bytes_of_utf8(receiver: FakeReceiver) -> None:
    """A digest of many Chinese-named alerts stays within 4096 bytes, cut at a line, with a note."""
    receiver.script(OK)
    events = tuple(make_event(n) for n in range(120))
    _notifier(receiver).send(Notification(events, T0))

    content = receiver.requests[0].json()["markdown"]["content"]
    assert len(content.encode()) <= MAX_CONTENT_BYTES
    assert len(content.encode()) > MAX_CONTENT_BYTES - 300  # cut near the limit, not far before it
    last = content.splitlines()[-1]
    assert last.startswith("… (")
    assert last.endswith("more lines cut)")
    kept = content.count("\n- [FIRING]")
    assert kept + int(last.split("(")[1].split()[0]) == 120


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
