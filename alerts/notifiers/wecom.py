"""WeCom (企业微信) group robot: markdown messages within the robot's limits.

At least once, through the outbox. WeCom answers HTTP 200 even when it refuses a message, so the
body's `errcode` decides: -1 (system busy) is retried; 45009 (api freq out of limit) pauses the
robot (every receiver of the same key) for `throttle_pause` from the answer, across restarts;
any other code (invalid key 93000, content too long 40058, ...) is final and recorded.

POST `<base_url>?key=<webhook_key>` with `{"msgtype": "markdown", "markdown": {"content": ...}}`.
Limits (WeCom's group robot docs): at most 20 messages a minute per robot, hence the default
`rate_limit` of 18 per sliding minute (10 % of margin; more than 20 is refused at start-up);
markdown content of at most 4096 bytes of UTF-8. A longer notification (a big digest) is split
into parts of whole lines, each within 4096 bytes, never cut. WeCom documents no penalty beyond
its minute, so `throttle_pause` defaults to one minute. The key never appears in an error or a
log line.

Example:
    notify:
      receivers:
        - {type: wecom, name: basin-duty-room, webhook_key: "${WECOM_ROBOT_KEY}"}
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Final, Literal, Self
from urllib.parse import quote_plus

import orjson
from pydantic import AnyHttpUrl, ConfigDict, Field, SecretStr, model_validator

from alerts.notifiers.http_verdict import errcode_error, error_from_response, post
from alerts.ratelimit import RateLimitConfig, target_id
from alerts.routing import RECEIVER_NAME_PATTERN
from alerts.templates import DEFAULT_TEMPLATE, MessageTemplate, Notification, PartRenderer
from config.http import make_pool
from config.types import StrictModel

DEFAULT_BASE_URL: Final = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
# WeCom's global error codes: -1 system busy, 45009 api freq out of limit.
RETRY_ERRCODES: Final = frozenset({-1, 45009})
THROTTLE_ERRCODES: Final = frozenset({45009})
# "每个机器人发送的消息不能超过20条/分钟。" (WeCom, group robot docs)
ROBOT_LIMIT: Final = RateLimitConfig(messages=20, per=timedelta(minutes=1))
DEFAULT_RATE_LIMIT: Final = RateLimitConfig(messages=18, per=timedelta(minutes=1))
# The robot counts per minute: a retry within the same minute would only be refused again.
THROTTLE_PAUSE: Final = timedelta(minutes=1)
# WeCom's documented limit for markdown content, in UTF-8 bytes.
MAX_CONTENT_BYTES: Final = 4096


class WeComConfig(StrictModel):
    # A validation error must not echo the input: it holds secrets.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: Literal["wecom"] = "wecom"
    name: str = Field(pattern=RECEIVER_NAME_PATTERN, description="Receiver name in routes, logs and the API.")
    webhook_key: SecretStr = Field(description="The robot's key (the `key=` of its webhook URL).")
    base_url: AnyHttpUrl = Field(AnyHttpUrl(DEFAULT_BASE_URL), description="The robot send endpoint.")
    mention_userids: tuple[str, ...] = Field((), description="WeCom user ids to @ in every message.")
    template: MessageTemplate = Field(
        DEFAULT_TEMPLATE, description="Markdown text (the title is unused); `language` zh (default) or en."
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
        description="How long the robot is left alone after a rate-limit answer (45009).",
    )

    @model_validator(mode="after")
    def _within_the_robot_limit(self) -> Self:
        if self.rate_limit.exceeds(ROBOT_LIMIT):
            raise ValueError(
                "rate_limit: the robot takes at most 20 messages a minute; configure 20 per PT1M or less"
            )
        return self


class WeComNotifier:
    kind: ClassVar[str] = "wecom"
    resend_interval: timedelta | None = None

    def __init__(self, config: WeComConfig) -> None:
        self.config = config
        self._key = config.webhook_key.get_secret_value()
        self._url = f"{config.base_url}?key={quote_plus(self._key)}"
        self._pool = make_pool()
        self.target = target_id(self.kind, str(config.base_url), self._key)
        self._parts = PartRenderer(
            config.template, lambda _title, text: len(self._content(text).encode()) <= MAX_CONTENT_BYTES
        )

    def count_parts(self, notification: Notification) -> int:
        return len(self._parts.parts(notification))

    def send(self, notification: Notification) -> None:
        answer = post(
            self._pool,
            self._url,
            orjson.dumps({"msgtype": "markdown", "markdown": {"content": self.content(notification)}}),
            {
                "Content-Type": "application/json",
                "User-Agent": "ecowatch",
                "Idempotency-Key": notification.part_key,
            },
            timeout=self.config.timeout.total_seconds(),
            secrets=[self._key],
        )
        pause = self.config.throttle_pause.total_seconds()
        error = error_from_response(answer, [self._key]) or errcode_error(
            answer, RETRY_ERRCODES, THROTTLE_ERRCODES, pause, [self._key]
        )
        if error is not None:
            raise error

    def close(self) -> None:
        self._pool.clear()

    def content(self, notification: Notification) -> str:
        """The markdown content of the part `notification.part` names, within the robot's byte limit."""
        _title, text = self._parts.part(notification)
        return self._content(text)

    def _content(self, text: str) -> str:
        mentions = " ".join(f"<@{user}>" for user in self.config.mention_userids)
        return f"{text}\n{mentions}" if mentions else text
