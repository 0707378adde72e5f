"""DingTalk custom robot (自定义机器人): one markdown message per notification, signed.

At least once, through the outbox. The robot answers HTTP 200 even when it refuses a message, so
the body's `errcode` decides: 0 accepted; the rate-limit codes and "system busy" are retried
(after the robot's ten-minute throttle for the rate-limit codes); any other code (bad token, bad
signature, keyword or IP check failed, robot disabled) is final and recorded.

URL: `<base_url>?access_token=<token>`, and with a `secret` (the robot's 加签 security setting)
`&timestamp=<ms>&sign=<s>` where s is the URL-encoded base64 of HMAC-SHA256 keyed by the secret
over "<timestamp>\\n<secret>". The robot takes 20 messages a minute, hence the default
`rate_limit`; beyond it the outbox sends digests. The token and the secret never appear in an
error or a log line (`http_verdict.scrub`).

Example:
    notify:
      receivers:
        - type: dingtalk
          name: basin-duty-room
          access_token: "${DINGTALK_ROBOT_TOKEN}"
          secret: "${DINGTALK_ROBOT_SECRET}"
          at_mobiles: ["13800000000"]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta
from typing import Any, ClassVar, Final, Literal
from urllib.parse import quote_plus

import orjson
from pydantic import AnyHttpUrl, ConfigDict, Field, SecretStr

from alerts.notifiers.http_verdict import errcode_error, error_from_response, post
from alerts.ratelimit import RateLimitConfig
from alerts.routing import RECEIVER_NAME_PATTERN
from alerts.templates import MessageTemplate, Notification, render, truncate_utf8
from config.http import make_pool
from config.types import StrictModel

DEFAULT_BASE_URL: Final = "https://oapi.dingtalk.com/robot/send"
# DingTalk's robot docs: "send too fast" (130101, and 410100 in newer answers), "system busy" (-1).
RETRY_ERRCODES: Final = frozenset({-1, 130101, 410100})
THROTTLE_ERRCODES: Final = frozenset({130101, 410100})
# Past 20 messages a minute the robot is throttled for ten minutes; retrying sooner only fails again.
THROTTLE_RETRY_AFTER_SECONDS: Final = 600.0
# The robot refuses messages past 20 000 bytes; leave room for the JSON around the text.
MAX_TEXT_BYTES: Final = 19_000


class DingTalkConfig(StrictModel):
    # A validation error must not echo the input: it holds secrets.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: Literal["dingtalk"] = "dingtalk"
    name: str = Field(pattern=RECEIVER_NAME_PATTERN, description="Receiver name in routes, logs and the API.")
    access_token: SecretStr = Field(description="The robot's access_token (from its webhook URL).")
    secret: SecretStr | None = Field(
        None, description="The robot's signing secret (加签, SEC...), if enabled."
    )
    base_url: AnyHttpUrl = Field(AnyHttpUrl(DEFAULT_BASE_URL), description="The robot send endpoint.")
    at_mobiles: tuple[str, ...] = Field((), description="Mobile numbers to @ in every message.")
    at_all: bool = Field(False, description="@ everyone in the group.")
    template: MessageTemplate = Field(MessageTemplate(), description="Title and markdown text.")
    timeout: timedelta = Field(timedelta(seconds=5), gt=timedelta(0), description="Limit on one request.")
    rate_limit: RateLimitConfig | None = Field(
        RateLimitConfig(messages=20, per=timedelta(minutes=1)),
        description="The robot's own limit by default: 20 a minute; digests beyond.",
    )


class DingTalkNotifier:
    kind: ClassVar[str] = "dingtalk"
    resend_interval: timedelta | None = None

    def __init__(self, config: DingTalkConfig) -> None:
        self.config = config
        self._token = config.access_token.get_secret_value()
        self._secret = config.secret.get_secret_value() if config.secret else None
        self._secrets = [s for s in (self._token, self._secret) if s]
        self._pool = make_pool()

    def send(self, notification: Notification) -> None:
        timestamp_ms = int(notification.now.timestamp() * 1000)
        answer = post(
            self._pool,
            self._signed_url(timestamp_ms),
            orjson.dumps(self._message(notification)),
            {
                "Content-Type": "application/json",
                "User-Agent": "ecowatch",
                "Idempotency-Key": notification.key,
            },
            timeout=self.config.timeout.total_seconds(),
            secrets=self._secrets,
        )
        error = error_from_response(answer, self._secrets) or errcode_error(
            answer, RETRY_ERRCODES, THROTTLE_ERRCODES, THROTTLE_RETRY_AFTER_SECONDS, self._secrets
        )
        if error is not None:
            raise error

    def close(self) -> None:
        self._pool.clear()

    def _message(self, notification: Notification) -> dict[str, Any]:
        title, text = render(self.config.template, notification)
        # DingTalk only notifies the people whose numbers also appear in the text.
        mentions = " ".join(f"@{mobile}" for mobile in self.config.at_mobiles)
        text = truncate_utf8(text, MAX_TEXT_BYTES - len(mentions.encode()) - 2)
        if mentions:
            text = f"{text}\n\n{mentions}"
        return {
            "msgtype": "markdown",
            "markdown": {"title": title, "text": text},
            "at": {"atMobiles": list(self.config.at_mobiles), "isAtAll": self.config.at_all},
        }

    def _signed_url(self, timestamp_ms: int) -> str:
        url = f"{self.config.base_url}?access_token={quote_plus(self._token)}"
        if self._secret is None:
            return url
        return f"{url}&timestamp={timestamp_ms}&sign={sign(self._secret, timestamp_ms)}"


def sign(secret: str, timestamp_ms: int) -> str:
    """The `sign` parameter: URL-encoded base64 HMAC-SHA256 over "timestamp\\nsecret", keyed by the secret."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())
