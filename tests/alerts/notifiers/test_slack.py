"""The Slack-compatible incoming webhook: text and blocks, `ok` answers, error verdicts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alerts.notifiers import DeliveryError, DeliveryReason, Notification
from alerts.notifiers.slack import SlackConfig, SlackNotifier
from tests.alerts.notifiers.fake_receiver import STATION, T0, Answer, FakeReceiver, make_event

HOOK_PATH = "/services/T0000/B0000/slack-secret-part-XXXXXXXX"


def _notifier(receiver: FakeReceiver) -> SlackNotifier:
    return SlackNotifier(SlackConfig.model_validate({"name": "ops", "url": f"{receiver.url}{HOOK_PATH}"}))


def test_message_has_text_and_blocks(receiver: FakeReceiver) -> None:
    """The POST carries mrkdwn text plus a header and a section block."""
    _notifier(receiver).send(Notification((make_event(1),), T0))

    (request,) = receiver.requests
    assert request.path == HOOK_PATH
    body = request.json()
    assert body["text"].startswith("*【告警·警告】")
    assert STATION.name in body["text"]
    header, section = body["blocks"]
    assert header["type"] == "header"
    assert header["text"]["text"].startswith("【告警·警告】")
    assert section["text"] == {"type": "mrkdwn", "text": body["text"]}


def test_slack_defaults_are_mrkdwn_in_either_language() -> None:
    """Slack's defaults have no markdown headings or list dashes; a partial template keeps Slack's for the rest."""
    notification = Notification((make_event(1),), T0)

    def text(template: dict[str, str]) -> str:
        config = SlackConfig.model_validate(
            {"name": "ops", "url": f"http://127.0.0.1:9{HOOK_PATH}", "template": template}
        )
        return str(SlackNotifier(config).message(notification)["text"])

    assert text({}).splitlines()[1:3] == [
        "站点：嘉陵江 磁器口（cq-jl-001）",
        "位置：沙坪坝区 · 嘉陵江 · 长江",
    ]
    assert text({"language": "en"}).startswith("*[FIRING]")
    assert "Values: nh3n=1.81" in text({"language": "en"}).splitlines()
    assert text({"title": "{headline}"}).startswith("*【告警·警告】")


@pytest.mark.parametrize("answer", [Answer(200, b"ok"), Answer.json(200, {"ok": True}), Answer(204, b"")])
def test_ok_answers_are_accepted(receiver: FakeReceiver, answer: Answer) -> None:
    """Slack's `ok` and compatible servers' JSON or empty 2xx answers count as accepted."""
    receiver.script(answer)
    _notifier(receiver).send(Notification((make_event(1),), T0))

    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("answer", "reason", "retryable"),
    [
        (Answer(429, b"rate_limited", {"Retry-After": "3"}), DeliveryReason.THROTTLED, True),
        (Answer(400, b"invalid_payload"), DeliveryReason.REJECTED, False),
        (Answer(404, b"no_service"), DeliveryReason.NOT_FOUND, False),
        (Answer(500, b"rollup_error"), DeliveryReason.SERVER_ERROR, True),
        (Answer.json(200, {"ok": False, "error": "invalid_blocks"}), DeliveryReason.REJECTED, False),
        (Answer.json(200, {"ok": False, "error": "rate_limited"}), DeliveryReason.THROTTLED, True),
    ],
)
def test_errors_map_to_verdicts(
    receiver: FakeReceiver, answer: Answer, reason: DeliveryReason, retryable: bool
) -> None:
    """Slack's error codes and `ok: false` bodies are refused; only rate limits and 5xx retry."""
    receiver.script(answer)
    with pytest.raises(DeliveryError) as caught:
        _notifier(receiver).send(Notification((make_event(1),), T0))

    assert (caught.value.reason, caught.value.retryable) == (reason, retryable)


def test_url_must_be_http_and_is_not_quoted_when_wrong() -> None:
    """A webhook URL that is not http(s) is refused at load without echoing it."""
    with pytest.raises(ValidationError) as caught:
        SlackConfig.model_validate({"name": "ops", "url": "ftp://hooks.example/secret-part-123"})

    assert "secret-part-123" not in str(caught.value)
