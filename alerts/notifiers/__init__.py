"""Notifiers: where alert notifications go. One module per channel, one protocol, one registry.

A notifier makes one attempt per `send` and states the verdict of a failure in `DeliveryError`
(`http_verdict`); the outbox (`alerts.outbox`) owns routing, retries with backoff, rate limits,
digests and the durable record of every delivery, so every channel behaves the same under
failure. A channel with a size limit splits a long notification into parts (`count_parts`;
`send` sends the part the notification names); it never cuts one. A notifier never puts a
secret (token, key, signing secret, webhook URL) into an error or a log line.

Adding a channel (say Feishu): `alerts/notifiers/feishu.py` with its docstring, `FeishuConfig`
and `FeishuNotifier`; both added to `NotifierConfig`, `NOTIFIERS` and `make_notifier` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, ClassVar, Final, Protocol

from pydantic import Field

from alerts.notifiers.alertmanager import AlertmanagerConfig, AlertmanagerNotifier
from alerts.notifiers.dingtalk import DingTalkConfig, DingTalkNotifier
from alerts.notifiers.http_verdict import DeliveryError, DeliveryReason
from alerts.notifiers.slack import SlackConfig, SlackNotifier
from alerts.notifiers.webhook import WebhookConfig, WebhookNotifier
from alerts.notifiers.wecom import WeComConfig, WeComNotifier
from alerts.templates import Notification

__all__ = [
    "NOTIFIERS",
    "DeliveryError",
    "DeliveryReason",
    "Notification",
    "Notifier",
    "NotifierConfig",
    "make_notifier",
]


class Notifier(Protocol):
    kind: ClassVar[str]
    # Receivers that forget alerts unless they are re-sent (Alertmanager) set how often the
    # outbox re-sends the alerts firing for them; None for all others.
    resend_interval: timedelta | None
    # Where the messages go, without its secret (`ratelimit.target_id`): receivers with the same
    # target share one rate-limit window and one pause.
    target: str

    def count_parts(self, notification: Notification) -> int:
        """How many messages the notification takes on this channel (1 unless a size limit splits it)."""
        ...

    def send(self, notification: Notification) -> None:
        """Deliver part `notification.part` in one attempt; raises `DeliveryError` with the retry verdict."""
        ...

    def close(self) -> None: ...


NotifierConfig = Annotated[
    WebhookConfig | AlertmanagerConfig | DingTalkConfig | WeComConfig | SlackConfig,
    Field(discriminator="type"),
]

NOTIFIERS: Final[Mapping[str, type[Notifier]]] = {
    c.kind: c for c in (WebhookNotifier, AlertmanagerNotifier, DingTalkNotifier, WeComNotifier, SlackNotifier)
}


def make_notifier(config: NotifierConfig) -> Notifier:
    """The notifier a receiver's config describes (its `type` picks the class)."""
    if isinstance(config, WebhookConfig):
        return WebhookNotifier(config)
    if isinstance(config, AlertmanagerConfig):
        return AlertmanagerNotifier(config)
    if isinstance(config, DingTalkConfig):
        return DingTalkNotifier(config)
    if isinstance(config, WeComConfig):
        return WeComNotifier(config)
    return SlackNotifier(config)
