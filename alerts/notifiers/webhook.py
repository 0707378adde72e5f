"""Generic webhook: one JSON POST per notification, signed per the Standard Webhooks convention.

Body (UTF-8 JSON). One event is sent as `AlertEvent.to_json()` writes it:
    key                 the idempotency key, unique per notification
    alert_id            stable id of the alert (rule, station, parameter), the same in every event
    rule, kind          the rule that fired and what it detects
    status              "firing" | "resolved";  severity: the rule's severity
    labels, annotations the alert's identity labels and its human-readable texts (summary,
                        description; `change`: escalated | deescalated when a firing alert's
                        severity changed; silenced_by, acknowledged_by)
    starts_at, event_at, ends_at   ISO 8601 times: alert start, this event, alert end (or null)
    station             {id, name, district, basin, river, water_body, target_class} or null
    parameter, water_class, target_class, primary_pollutants [codes], values {code: number}
    reminder, silenced, acknowledged   booleans;  links {name: url}
Several events sent as one digest (when the receiver's `rate_limit` would be exceeded) go as
    {"type": "digest", "key": <digest key>, "keys": [<event key>, ...], "events": [<event>, ...]}

Headers (https://www.standardwebhooks.com, "Signature scheme"):
    webhook-id          the idempotency key: the event's key, or for a digest `digest-<hash of its
                        keys>`; the same on every retry, so the receiver can drop repeats
    webhook-timestamp   unix seconds of this attempt (a receiver should refuse stale ones)
    webhook-signature   `v1,<base64 of HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`
    Idempotency-Key     the same value as webhook-id
The secret is either `whsec_<base64>` as the spec writes it (the key is the decoded bytes) or any
other string of at least 16 bytes, whose UTF-8 bytes are the key. Answers follow
`http_verdict`: 2xx accepted; 429, 5xx and network failures retried; other 4xx final.

Example:
    notify:
      receivers:
        - type: webhook
          name: city-platform
          url: https://platform.example/hooks/ecowatch
          secret: "${ECOWATCH_WEBHOOK_SECRET}"
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import timedelta
from typing import Any, ClassVar, Final, Literal, Self

import orjson
from pydantic import AnyHttpUrl, ConfigDict, Field, SecretStr, model_validator

from alerts.notifiers.http_verdict import error_from_response, post
from alerts.ratelimit import RateLimitConfig, target_id
from alerts.routing import RECEIVER_NAME_PATTERN
from alerts.templates import Notification
from config.http import make_pool
from config.types import StrictModel, TLSConfig

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
# The spec asks for keys of 24 to 64 bytes; fewer than 16 is too weak to be worth signing with.
MIN_KEY_BYTES: Final = 16


class WebhookConfig(StrictModel):
    # A validation error must not echo the input: it holds secrets.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: Literal["webhook"] = "webhook"
    name: str = Field(pattern=RECEIVER_NAME_PATTERN, description="Receiver name in routes, logs and the API.")
    url: AnyHttpUrl = Field(description="Where the JSON is POSTed.")
    secret: SecretStr = Field(description="Signing secret: `whsec_<base64>` or a string of 16+ bytes.")
    timeout: timedelta = Field(timedelta(seconds=10), gt=timedelta(0), description="Limit on one request.")
    rate_limit: RateLimitConfig | None = Field(None, description="Messages per window; digests beyond.")
    tls: TLSConfig | None = Field(None, description="TLS settings for an https:// URL.")

    @model_validator(mode="after")
    def _usable_secret(self) -> Self:
        signing_key(self.secret.get_secret_value())  # raises ValueError, which names no secret
        return self


class WebhookNotifier:
    kind: ClassVar[str] = "webhook"
    resend_interval: timedelta | None = None

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self._url = str(config.url)
        self._key = signing_key(config.secret.get_secret_value())
        self._pool = make_pool(config.tls)
        self.target = target_id(self.kind, self._url)

    def count_parts(self, _notification: Notification) -> int:
        return 1  # a digest is one JSON document, whatever its size

    def send(self, notification: Notification) -> None:
        body = orjson.dumps(payload(notification))
        message_id = notification.key
        timestamp = str(int(notification.now.timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ecowatch",
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": sign(self._key, message_id, timestamp, body),
            "Idempotency-Key": message_id,
        }
        answer = post(self._pool, self._url, body, headers, timeout=self.config.timeout.total_seconds())
        error = error_from_response(answer)
        if error is not None:
            raise error

    def close(self) -> None:
        self._pool.clear()


def payload(notification: Notification) -> dict[str, Any]:
    """The documented body: the event itself, or a digest envelope around several."""
    if not notification.is_digest:
        return notification.events[0].to_json()
    return {
        "type": "digest",
        "key": notification.key,
        "keys": notification.keys,
        "events": [event.to_json() for event in notification.events],
    }


def sign(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`."""
    signed = message_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: `whsec_<base64>` decoded, any other string as UTF-8."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("secret: the part after whsec_ is not valid base64") from None
    else:
        key = secret.encode()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"secret: the signing key must be at least {MIN_KEY_BYTES} bytes")
    return key
