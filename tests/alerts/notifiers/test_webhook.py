"""The generic webhook: documented JSON body, Standard Webhooks signature, verdicts on answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from pydantic import ValidationError

from alerts.notifiers import DeliveryError, DeliveryReason, Notification
from alerts.notifiers.webhook import WebhookConfig, WebhookNotifier
from tests.alerts.notifiers.fake_receiver import T0, Answer, FakeReceiver, Recorded, make_event

# A secret as Standard Webhooks writes it: "whsec_" and the base64 of the key bytes.
KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def _verify(request: Recorded, key: bytes) -> bool:
    """Standard Webhooks verification, from the spec's text: HMAC-SHA256 over "id.timestamp.body"."""
    msg_id = request.header("webhook-id")
    timestamp = request.header("webhook-timestamp")
    signatures = request.header("webhook-signature")
    assert msg_id
    assert timestamp
    assert signatures
    content = f"{msg_id}.{timestamp}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    # The header is a space-delimited list of "<version>,<signature>".
    return any(
        version == "v1" and hmac.compare_digest(signature, expected)
        for version, _, signature in (item.partition(",") for item in signatures.split(" "))
    )


def _notifier(receiver: FakeReceiver, secret: str = SECRET) -> WebhookNotifier:
    return WebhookNotifier(WebhookConfig(name="hook", url=f"{receiver.url}/hook", secret=secret))


def test_body_is_the_documented_event_json(receiver: FakeReceiver) -> None:
    """One event is POSTed as the AlertEvent JSON: identity, status, station, class, values, times, links."""
    event = make_event(1)
    _notifier(receiver).send(Notification((event,), T0))

    (request,) = receiver.requests
    assert request.path == "/hook"
    assert request.header("Content-Type") == "application/json"
    body = request.json()
    assert body == json.loads(json.dumps(event.to_json()))
    assert body["station"]["district"] == "沙坪坝区"
    assert body["water_class"] == "V"
    assert body["primary_pollutants"] == ["nh3n"]


def test_signature_verifies_with_an_independent_implementation(receiver: FakeReceiver) -> None:
    """webhook-id is the event key, webhook-timestamp the attempt's unix seconds, and the v1 HMAC verifies."""
    event = make_event(1)
    _notifier(receiver).send(Notification((event,), T0))

    (request,) = receiver.requests
    assert request.header("webhook-id") == event.key
    assert request.header("Idempotency-Key") == event.key
    assert request.header("webhook-timestamp") == str(int(T0.timestamp()))
    assert _verify(request, KEY)
    assert not _verify(request, b"another key of at least 16 bytes")


def test_plain_secret_is_used_as_utf8_key(receiver: FakeReceiver) -> None:
    """A secret without the whsec_ prefix signs with its own UTF-8 bytes."""
    secret = "a plain shared secret, 32 bytes!"
    _notifier(receiver, secret).send(Notification((make_event(1),), T0))

    assert _verify(receiver.requests[0], secret.encode())


def test_retry_keeps_the_id_and_signs_a_fresh_timestamp(receiver: FakeReceiver) -> None:
    """A retry sends the same webhook-id with the new attempt's timestamp, and still verifies."""
    notifier = _notifier(receiver)
    event = make_event(1)
    notifier.send(Notification((event,), T0))
    notifier.send(Notification((event,), T0 + timedelta(seconds=90)))

    first, second = receiver.requests
    assert first.header("webhook-id") == second.header("webhook-id") == event.key
    assert int(second.header("webhook-timestamp") or 0) - int(first.header("webhook-timestamp") or 0) == 90
    assert _verify(second, KEY)


def test_digest_body_lists_every_event_and_key(receiver: FakeReceiver) -> None:
    """A digest goes as {type: digest, key, keys, events}, its id derived from all its keys."""
    events = tuple(make_event(n) for n in range(3))
    notification = Notification(events, T0)
    _notifier(receiver).send(notification)

    (request,) = receiver.requests
    body = request.json()
    assert body["type"] == "digest"
    assert body["keys"] == [e.key for e in events]
    assert [e["key"] for e in body["events"]] == body["keys"]
    assert request.header("webhook-id") == body["key"] == notification.key
    assert notification.key.startswith("digest-")
    assert Notification(tuple(reversed(events)), T0).key == notification.key
    assert _verify(request, KEY)


@pytest.mark.parametrize(
    ("answer", "reason", "retryable", "retry_after"),
    [
        (Answer(429, b"slow down", {"Retry-After": "30"}), DeliveryReason.THROTTLED, True, 30.0),
        (Answer(500, b"boom"), DeliveryReason.SERVER_ERROR, True, None),
        (Answer(503, b"", {"Retry-After": "5"}), DeliveryReason.UNAVAILABLE, True, 5.0),
        (Answer(400, b"bad"), DeliveryReason.REJECTED, False, None),
        (Answer(401, b"who"), DeliveryReason.UNAUTHORIZED, False, None),
        (Answer(404, b"gone"), DeliveryReason.NOT_FOUND, False, None),
        (Answer(410, b"gone"), DeliveryReason.REJECTED, False, None),
    ],
)
def test_answers_map_to_verdicts(
    receiver: FakeReceiver, answer: Answer, reason: DeliveryReason, retryable: bool, retry_after: float | None
) -> None:
    """429 and 5xx are retried (with Retry-After), other 4xx are final."""
    receiver.script(answer)
    with pytest.raises(DeliveryError) as caught:
        _notifier(receiver).send(Notification((make_event(1),), T0))

    assert (caught.value.reason, caught.value.retryable, caught.value.retry_after) == (
        reason,
        retryable,
        retry_after,
    )


@pytest.mark.parametrize(
    "secret",
    ["short", "whsec_" + base64.b64encode(b"short").decode(), "whsec_not base64!"],
)
def test_weak_or_malformed_secrets_fail_at_load(secret: str) -> None:
    """A key under 16 bytes or a whsec_ secret that is not base64 is refused, without quoting it."""
    with pytest.raises(ValidationError) as caught:
        WebhookConfig(name="hook", url="http://127.0.0.1:1/", secret=secret)

    assert "secret" in str(caught.value)
    assert secret not in str(caught.value)
