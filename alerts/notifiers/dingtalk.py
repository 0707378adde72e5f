"""DingTalk custom robot (自定义机器人): markdown messages, signed, within the robot's limits.

At least once, through the outbox. The robot answers HTTP 200 even when it refuses a message, so
the body's `errcode` decides: 0 accepted; "system busy" (-1) is retried; the rate-limit codes
(130101 "send too fast, exceed 20 times per minute", 410100) mean the robot is now throttled for
ten minutes, so the outbox pauses it (every receiver of the same robot) for `throttle_pause`
from the answer, across restarts; any other code (bad token, bad signature, keyword or IP check
failed, robot disabled) is final and recorded.

Limits (DingTalk's custom robot docs): 20 messages a minute per robot, then ten minutes of
refusals, hence the default `rate_limit` of 18 per sliding minute (10 % of margin; more than 20
is refused at start-up); a message of at most 20 000 bytes. A notification longer than that
(a big digest) is split into parts of whole lines, each within 19 000 bytes of JSON, never cut.

URL: `<base_url>?access_token=<token>`, and with a `secret` (the robot's 加签 security setting)
`&timestamp=<ms>&sign=<s>` where s is the URL-encoded base64 of HMAC-SHA256 keyed by the secret
over "<timestamp>\\n<secret>". The token and the secret never appear in an error or a log line
(`http_verdict.scrub`).

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
from typing import Any, ClassVar, Final, Literal, Self
from urllib.parse import quote_plus

import orjson
from pydantic import AnyHttpUrl, ConfigDict, Field, SecretStr, model_validator

from alerts.notifiers.http_verdict import errcode_error, error_from_response, post
from alerts.ratelimit import RateLimitConfig, target_id
from alerts.routing import RECEIVER_NAME_PATTERN
from alerts.templates import DEFAULT_TEMPLATE, MessageTemplate, Notification, PartRenderer
from config.http import make_pool
from config.types import StrictModel

DEFAULT_BASE_URL: Final = "https://oapi.dingtalk.com/robot/send"
# DingTalk's robot docs: "send too fast" (130101, and 410100 in newer answers), "system busy" (-1).
RETRY_ERRCODES: Final = frozenset({-1, 130101, 410100})
THROTTLE_ERRCODES: Final = frozenset({130101, 410100})
# "每个机器人每分钟最多发送20条。如果超过20条，会限流10分钟。" (DingTalk, custom robot docs)
ROBOT_LIMIT: Final = RateLimitConfig(messages=20, per=timedelta(minutes=1))
DEFAULT_RATE_LIMIT: Final = RateLimitConfig(messages=18, per=timedelta(minutes=1))
THROTTLE_PAUSE: Final = timedelta(minutes=10)
# The robot refuses messages past 20 000 bytes; the whole JSON body stays 1 000 bytes below that.
MAX_BODY_BYTES: Final = 19_000
# The title is what the conversation list shows; the text's first line repeats it in full.
MAX_TITLE_CHARS: Final = 128


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
    template: MessageTemplate = Field(
        DEFAULT_TEMPLATE, description="Title and markdown text; `language` zh (default) or en."
    )
    timeout: timedelta = Field(timedelta(seconds=5), gt=timedelta(0), description="Limit on one request.")
    rate_limit: RateLimitConfig = Field(
        DEFAULT_RATE_LIMIT,
        description="Requests per sliding window, shared by every receiver of this robot: 18 a minute "
        "by default, below the robot's 20 (more is refused); digests beyond.",
    )
    throttle_pause: timedelta = Field(
        THROTTLE_PAUSE,
        gt=timedelta(0),
        description="How long the robot is left alone after a rate-limit answer (130101): the robot's "
        "own ten minutes of throttling by default.",
    )

    @model_validator(mode="after")
    def _within_the_robot_limit(self) -> Self:
        if self.rate_limit.exceeds(ROBOT_LIMIT):
            raise ValueError(
                "rate_limit: the robot takes at most 20 messages a minute and then refuses all for "
                "ten minutes; configure 20 per PT1M or less"
            )
        return self


class DingTalkNotifier:
    kind: ClassVar[str] = "dingtalk"
    resend_interval: timedelta | None = None

    def __init__(self, config: DingTalkConfig) -> None:
        self.config = config
        self._token = config.access_token.get_secret_value()
        self._secret = config.secret.get_secret_value() if config.secret else None
        self._secrets = [s for s in (self._token, self._secret) if s]
        self._pool = make_pool()
        self.target = target_id(self.kind, str(config.base_url), self._token)
        self._parts = PartRenderer(
            config.template,
            lambda title, text: len(orjson.dumps(self._message(title, text))) <= MAX_BODY_BYTES,
        )

    def count_parts(self, notification: Notification) -> int:
        return len(self._parts.parts(notification))

    def send(self, notification: Notification) -> None:
        timestamp_ms = int(notification.now.timestamp() * 1000)
        answer = post(
            self._pool,
            self._signed_url(timestamp_ms),
            orjson.dumps(self._message(*self._parts.part(notification))),
            {
                "Content-Type": "application/json",
                "User-Agent": "ecowatch",
                "Idempotency-Key": notification.part_key,
            },
            timeout=self.config.timeout.total_seconds(),
            secrets=self._secrets,
        )
        pause = self.config.throttle_pause.total_seconds()
        error = error_from_response(answer, self._secrets) or errcode_error(
            answer, RETRY_ERRCODES, THROTTLE_ERRCODES, pause, self._secrets
        )
        if error is not None:
            raise error

    def close(self) -> None:
        self._pool.clear()

    def _message(self, title: str, text: str) -> dict[str, Any]:
        # DingTalk only notifies the people whose numbers also appear in the text.
        mentions = " ".join(f"@{mobile}" for mobile in self.config.at_mobiles)
        if mentions:
            text = f"{text}\n\n{mentions}"
        if len(title) > MAX_TITLE_CHARS:
            title = title[: MAX_TITLE_CHARS - 1] + "…"
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
