"""WeCom (企业微信) group robot: one markdown message per notification.

At least once, through the outbox. WeCom answers HTTP 200 even when it refuses a message, so the
body's `errcode` decides: 45009 (api freq out of limit) and -1 (system busy) are retried, any
other code (invalid key 93000, content too long, ...) is final and recorded.

POST `<base_url>?key=<webhook_key>` with `{"msgtype": "markdown", "markdown": {"content": ...}}`.
The robot takes at most 4096 bytes of markdown content, so longer texts (big digests) keep
their first whole lines and end with a note of how many were cut; and 20 messages a minute,
hence the default `rate_limit`. The key never appears in an error or a log line.

Example:
    notify:
      receivers:
        - {type: wecom, name: basin-duty-room, webhook_key: "${WECOM_ROBOT_KEY}"}
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Final, Literal
from urllib.parse import quote_plus

import orjson
from pydantic import AnyHttpUrl, ConfigDict, Field, SecretStr

from alerts.notifiers.http_verdict import errcode_error, error_from_response, post
from alerts.ratelimit import RateLimitConfig
from alerts.routing import RECEIVER_NAME_PATTERN
from alerts.templates import MessageTemplate, Notification, render, truncate_utf8
from config.http import make_pool
from config.types import StrictModel

DEFAULT_BASE_URL: Final = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
# WeCom's global error codes: -1 system busy, 45009 api freq out of limit.
RETRY_ERRCODES: Final = frozenset({-1, 45009})
THROTTLE_ERRCODES: Final = frozenset({45009})
# The robot counts per minute: a retry within the same minute would only be refused again.
THROTTLE_RETRY_AFTER_SECONDS: Final = 60.0
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
    template: MessageTemplate = Field(MessageTemplate(), description="Markdown text (the title is unused).")
    timeout: timedelta = Field(timedelta(seconds=5), gt=timedelta(0), description="Limit on one request.")
    rate_limit: RateLimitConfig | None = Field(
        RateLimitConfig(messages=20, per=timedelta(minutes=1)),
        description="The robot's own limit by default: 20 a minute; digests beyond.",
    )


class WeComNotifier:
    kind: ClassVar[str] = "wecom"
    resend_interval: timedelta | None = None

    def __init__(self, config: WeComConfig) -> None:
        self.config = config
        self._key = config.webhook_key.get_secret_value()
        self._url = f"{config.base_url}?key={quote_plus(self._key)}"
        self._pool = make_pool()

    def send(self, notification: Notification) -> None:
        answer = post(
            self._pool,
            self._url,
            orjson.dumps({"msgtype": "markdown", "markdown": {"content": self.content(notification)}}),
            {
                "Content-Type": "application/json",
                "User-Agent": "ecowatch",
                "Idempotency-Key": notification.key,
            },
            timeout=self.config.timeout.total_seconds(),
            secrets=[self._key],
        )
        error = error_from_response(answer, [self._key]) or errcode_error(
            answer, RETRY_ERRCODES, THROTTLE_ERRCODES, THROTTLE_RETRY_AFTER_SECONDS, [self._key]
        )
        if error is not None:
            raise error

    def close(self) -> None:
        self._pool.clear()

    def content(self, notification: Notification) -> str:
        """The markdown content, within the robot's byte limit."""
        _title, text = render(self.config.template, notification)
        mentions = " ".join(f"<@{user}>" for user in self.config.mention_userids)
        if not mentions:
            return truncate_utf8(text, MAX_CONTENT_BYTES)
        return truncate_utf8(text, MAX_CONTENT_BYTES - len(mentions.encode()) - 1) + "\n" + mentions
