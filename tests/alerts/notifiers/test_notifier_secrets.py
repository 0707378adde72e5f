"""Conformance over the registry: secrets stay out of errors, logs and the API; keys go on every request.

Each channel is pointed at a receiver that echoes the whole request (path, query, headers, body)
into its error answer, at a closed port, and at a receiver too slow to answer; the secret must
not appear in the exception, its detail, the dispatcher's log lines, its stats or its API.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from structlog.testing import capture_logs

from alerts.notifiers import NOTIFIERS, DeliveryError, Notification, make_notifier
from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from tests.alerts.notifiers.fake_receiver import (
    T0,
    Answer,
    FakeClock,
    FakeReceiver,
    Recorded,
    insert_events,
    make_event,
)

TOKEN = "tok-3f9a7c1e5b2d4068"
SIGNING = "sig-secret-8d6e4f2a0c1b3957"
SLACK_PART = "slack-secret-7b1d9e3f5a"

# type -> (receiver config for a base URL, the secrets it holds)
CHANNELS: dict[str, Callable[[str], tuple[dict[str, Any], list[str]]]] = {
    "webhook": lambda url: ({"url": f"{url}/hook", "secret": SIGNING}, [SIGNING]),
    "alertmanager": lambda url: ({"url": url, "bearer_token": TOKEN}, [TOKEN]),
    "dingtalk": lambda url: (
        {"base_url": f"{url}/robot/send", "access_token": TOKEN, "secret": SIGNING},
        [TOKEN, SIGNING],
    ),
    "wecom": lambda url: ({"base_url": f"{url}/cgi-bin/webhook/send", "webhook_key": TOKEN}, [TOKEN]),
    "slack": lambda url: ({"url": f"{url}/services/T0/B0/{SLACK_PART}"}, [SLACK_PART]),
}


def test_every_registered_channel_is_covered() -> None:
    """A new notifier in the registry must be added to this conformance test."""
    assert set(CHANNELS) == set(NOTIFIERS)


def _config(kind: str, url: str, timeout: float = 2.0) -> tuple[dict[str, Any], list[str]]:
    fields, secrets = CHANNELS[kind](url)
    return {"type": kind, "name": f"{kind}-rx", "timeout": timeout, **fields}, secrets


def _echo(status: int) -> Callable[[Recorded], Answer]:
    def answer(request: Recorded) -> Answer:
        echoed = f"{request.path}?{urlencode(request.query)} {request.headers} {request.body.decode()}"
        if status == 200:  # robots: the error rides in a 200 answer's errmsg
            return Answer.json(200, {"errcode": 310000, "errmsg": echoed, "ok": False, "error": echoed})
        return Answer(status, echoed.encode())

    return answer


def _assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret[:6]}… leaked: {text[:300]}"


def _failure(kind: str, url: str, timeout: float = 2.0) -> tuple[DeliveryError, list[str]]:
    fields, secrets = _config(kind, url, timeout)
    notifier = make_notifier(NotifyConfig.model_validate({"receivers": [fields]}).receivers[0])
    try:
        with pytest.raises(DeliveryError) as caught:
            notifier.send(Notification((make_event(1),), T0))
    finally:
        notifier.close()
    return caught.value, secrets


def _error_text(error: DeliveryError) -> str:
    context = error.__context__ or error.__cause__
    return " ".join([str(error), repr(error), error.detail, repr(context) if context else ""])


@pytest.mark.parametrize("kind", sorted(CHANNELS))
@pytest.mark.parametrize("status", [200, 400, 500])
def test_echoed_request_does_not_leak_secrets(receiver: FakeReceiver, kind: str, status: int) -> None:
    """A receiver that echoes the request into its error answer cannot make a secret reach the error."""
    receiver.responder = _echo(status)
    if status == 200 and kind in ("webhook", "alertmanager"):
        receiver.responder = _echo(401)  # these read no 200 body; an echoing refusal instead
    error, secrets = _failure(kind, receiver.url)

    _assert_clean(_error_text(error), secrets)
    assert receiver.requests  # the request did go out, with its secret, to the receiver only


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_connection_refused_does_not_leak_secrets(kind: str, closed_port: int) -> None:
    """Network failures are retryable errors that quote neither the URL's secrets nor a cause."""
    error, secrets = _failure(kind, f"http://127.0.0.1:{closed_port}")

    assert error.retryable
    assert error.__cause__ is None
    assert error.__context__ is None
    _assert_clean(_error_text(error), secrets)


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_timeout_does_not_leak_secrets(receiver: FakeReceiver, kind: str) -> None:
    """A receiver slower than the timeout gives a retryable timeout error without secrets."""
    receiver.script(Answer(200, b"late", delay=1.0))
    error, secrets = _failure(kind, receiver.url, timeout=0.2)

    assert (error.reason, error.retryable) == ("timeout", True)
    _assert_clean(_error_text(error), secrets)


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_dispatcher_logs_stats_and_api_do_not_leak_secrets(
    receiver: FakeReceiver, tmp_path: Path, kind: str
) -> None:
    """Through the outbox, the failure's log lines, stats and API rows are free of secrets."""
    receiver.responder = _echo(400)
    fields, secrets = _config(kind, receiver.url)
    config = NotifyConfig.model_validate({"receivers": [fields], "retry": {"max_attempts": 1}})
    db = tmp_path / "alerts.db"
    insert_events(db, [make_event(1)])
    dispatcher = NotificationDispatcher(config, db, clock=FakeClock())
    with capture_logs() as logs:
        dispatcher.run_once(T0)

    assert any(entry["event"] == "notification_failed" for entry in logs)
    _assert_clean(repr(logs), secrets)
    _assert_clean(json.dumps(dispatcher.stats()), secrets)
    _assert_clean(json.dumps(dispatcher.deliveries()), secrets)
    assert dispatcher.stats()[f"{kind}-rx"]["failed"] == 1
    dispatcher.stop(1.0)


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_config_repr_and_dump_hide_secrets(kind: str) -> None:
    """A receiver's config prints and dumps its secrets masked."""
    fields, secrets = _config(kind, "http://127.0.0.1:9")
    config = NotifyConfig.model_validate({"receivers": [fields]})

    _assert_clean(repr(config), secrets)
    _assert_clean(json.dumps(config.model_dump(mode="json")), secrets)


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_every_channel_sends_the_idempotency_key(receiver: FakeReceiver, kind: str) -> None:
    """Each request carries Idempotency-Key: the event's key, or the digest's key for several events."""
    receiver.default = Answer.json(200, {"errcode": 0, "ok": True})
    fields, _secrets = _config(kind, receiver.url)
    notifier = make_notifier(NotifyConfig.model_validate({"receivers": [fields]}).receivers[0])
    single = Notification((make_event(1),), T0)
    digest = Notification((make_event(2), make_event(3)), T0)
    notifier.send(single)
    notifier.send(digest)
    notifier.close()

    assert [r.header("Idempotency-Key") for r in receiver.requests] == [single.key, digest.key]
