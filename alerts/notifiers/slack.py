"""Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, Zulip's Slack endpoint).

At least once, through the outbox. One message per notification: `text` (mrkdwn, also what
notifications and clients without blocks show) plus a header block and section blocks. Slack
answers `200 ok`, or an error status with a plain-text code (`invalid_payload`,
`channel_not_found`, ...) that `http_verdict` maps (429 with Retry-After pauses the webhook
from the answer, other 4xx final); a compatible server that answers 200 with
`{"ok": false, "error": ...}` is refused the same way, retried only when the error says it is
rate limited.

Limits (Slack's Block Kit reference): a header's text 150 characters, a section's text 3000, 50
blocks a message; `text` 40 000 characters. A message's lines are packed into sections of at
most 3000 characters, and a notification longer than `MAX_MESSAGE_CHARS` (kept well below the
40 000, which Slack's servers refuse in blocks long before) is split into parts of whole lines,
never cut. Slack takes about one message a second per webhook with short bursts, hence the
default `rate_limit`.

The webhook URL is the credential, so it is a secret: it never appears in an error or a log
line.

Example:
    notify:
      receivers:
        - {type: slack, name: ops-channel, url: "${SLACK_WEBHOOK_URL}"}
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, ClassVar, Final, Literal, Self
from urllib.parse import urlsplit

import orjson
from pydantic import ConfigDict, Field, SecretStr, model_validator

from alerts.notifiers.http_verdict import (
    DeliveryError,
    DeliveryReason,
    HTTPAnswer,
    error_from_response,
    post,
    scrub,
)
from alerts.ratelimit import RateLimitConfig, target_id
from alerts.routing import RECEIVER_NAME_PATTERN
from alerts.templates import (
    MARKDOWN_TEMPLATES,
    MessageTemplate,
    Notification,
    PartRenderer,
    TemplateSet,
    pack_lines,
)
from config.http import make_pool
from config.types import StrictModel

# Block Kit limits: a header's plain text 150 characters, a section's text 3000, 50 blocks.
MAX_HEADER_CHARS: Final = 150
MAX_SECTION_CHARS: Final = 3000
MAX_BLOCKS: Final = 50
# Slack documents 40 000 characters of text, but refuses blocks totalling past ~13 000 characters
# with msg_blocks_too_long (slackapi/bolt-js#2509); Mattermost's posts stop at 16 383.
MAX_MESSAGE_CHARS: Final = 12_000
# Shorter URL parts ("/", "/hooks") are no secret, and scrubbing them would garble every detail.
MIN_SECRET_PART: Final = 8

# Slack's mrkdwn has no headings or lists: bold stands in for a heading, plain lines for a list.
SLACK_TEMPLATES: Final[TemplateSet] = {
    "zh": {
        **MARKDOWN_TEMPLATES["zh"],
        "text": "*【{headline}】{summary}*\n{details}\n{link}",
        "detail_line": "{label}：{value}",
        "digest_header": "*共 {count} 条告警通知*：{firing} 条告警中，{resolved} 条已恢复",
        "digest_line": "• 【{headline}】{summary} · {place} · {values} · {event_at}",
    },
    "en": {
        **MARKDOWN_TEMPLATES["en"],
        "text": "*[{headline}] {summary}*{reminder}\n{details}\n{link}",
        "detail_line": "{label}: {value}",
        "digest_header": "*{count} alert notifications* ({firing} firing, {resolved} resolved)",
        "digest_line": "• [{headline}] {summary} · {place} · {values} · {event_at}",
    },
}


class SlackTemplate(MessageTemplate):
    """A Slack receiver's templates: what is left out is Slack's default (mrkdwn) of the language."""

    DEFAULTS: ClassVar[TemplateSet] = SLACK_TEMPLATES


SLACK_TEMPLATE: Final = SlackTemplate()


class SlackConfig(StrictModel):
    # A validation error must not echo the input: it holds secrets.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: Literal["slack"] = "slack"
    name: str = Field(pattern=RECEIVER_NAME_PATTERN, description="Receiver name in routes, logs and the API.")
    url: SecretStr = Field(description="The incoming-webhook URL (a credential: keep it in the environment).")
    template: SlackTemplate = Field(
        SLACK_TEMPLATE, description="Title (header block) and mrkdwn text; `language` zh or en."
    )
    timeout: timedelta = Field(timedelta(seconds=5), gt=timedelta(0), description="Limit on one request.")
    rate_limit: RateLimitConfig | None = Field(
        RateLimitConfig(messages=5, per=timedelta(seconds=5)),
        description="About one a second with short bursts by default; digests beyond.",
    )

    @model_validator(mode="after")
    def _http_url(self) -> Self:
        url = urlsplit(self.url.get_secret_value())
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("url must be an http:// or https:// URL")  # without quoting the secret
        return self


class SlackNotifier:
    kind: ClassVar[str] = "slack"
    resend_interval: timedelta | None = None

    def __init__(self, config: SlackConfig) -> None:
        self.config = config
        self._url = config.url.get_secret_value()
        # The path (Slack, Mattermost, Rocket.Chat) or the query (Zulip) carries the secret part.
        parts = urlsplit(self._url)
        self._secrets = [self._url, *(p for p in (parts.path, parts.query) if len(p) >= MIN_SECRET_PART)]
        self._pool = make_pool()
        self.target = target_id(self.kind, self._url)
        self._parts = PartRenderer(config.template, _fits)

    def count_parts(self, notification: Notification) -> int:
        return len(self._parts.parts(notification))

    def send(self, notification: Notification) -> None:
        answer = post(
            self._pool,
            self._url,
            orjson.dumps(self.message(notification)),
            {
                "Content-Type": "application/json",
                "User-Agent": "ecowatch",
                "Idempotency-Key": notification.part_key,
            },
            timeout=self.config.timeout.total_seconds(),
            secrets=self._secrets,
        )
        error = error_from_response(answer, self._secrets) or _body_error(answer, self._secrets)
        if error is not None:
            raise error

    def close(self) -> None:
        self._pool.clear()

    def message(self, notification: Notification) -> dict[str, Any]:
        """The JSON of the part `notification.part` names: its text, a header and its sections."""
        title, text = self._parts.part(notification)
        # The header repeats the title, which the text's first line also carries: shortening it loses nothing.
        header = title if len(title) <= MAX_HEADER_CHARS else title[: MAX_HEADER_CHARS - 1] + "…"
        return {
            "text": text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": header}},
                *({"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in _sections(text)),
            ],
        }


def _sections(text: str) -> list[str]:
    """The text's lines packed into section texts of at most MAX_SECTION_CHARS."""
    chunks = pack_lines(text.split("\n"), lambda lines: len("\n".join(lines)) <= MAX_SECTION_CHARS)
    # Slack refuses a section without text; blank lines between sections carry nothing.
    return [section for section in ("\n".join(chunk) for chunk in chunks) if section.strip()]


def _fits(_title: str, text: str) -> bool:
    return len(text) <= MAX_MESSAGE_CHARS and 1 + len(_sections(text)) <= MAX_BLOCKS


def _body_error(answer: HTTPAnswer, secrets: list[str]) -> DeliveryError | None:
    """The error of a 200 answer `{"ok": false, "error": ...}`; any other 2xx answer is acceptance."""
    try:
        document = json.loads(answer.text())
    except ValueError:
        return None  # Slack's own "ok", or a compatible server's plain text
    if not isinstance(document, dict) or document.get("ok") is not False:
        return None
    error = str(document.get("error", "unknown"))
    detail = scrub(f"ok=false: {error}", secrets)
    if "rate" in error and "limit" in error:
        return DeliveryError(DeliveryReason.THROTTLED, detail, retryable=True)
    return DeliveryError(DeliveryReason.REJECTED, detail, retryable=False)
