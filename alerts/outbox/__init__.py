"""The notification outbox: the alert engine's events delivered to every receiver, whole and in order.

    intake      notification_events → deliveries (one per receiver), from a durable watermark,
                exactly once; silenced events `skipped`
    worker      per receiver, its own thread: the queue in event order, messages (one event, or a
                digest when the rate limit has no room) split into parts by the channel, sent
                part by part within the target's sliding window; holds, pauses, retries
    dispatcher  the threads, `run_once` for tests with a fake clock, start-up checks, the API
    report      stats and delivery records for `/api/v1/notifications`
    schema      the tables, in the alert database
    cluster     cluster mode: a partition's events routed into the outbox stream; one receiver's
                messages delivered from it

Guarantees, per receiver:
- A delivery leaves `pending` only when the receiver accepted every part of the message that
  carries it (`delivered`), refused it for good (`failed`: a 4xx or robot error code that no
  retry can fix, or the retry budget spent; logged at error level, shown in `stats()` and the
  API), or when the event was silenced (`skipped`, never sent). Nothing is cut to fit a size
  limit: a long message is split into parts, and a retry resends only the parts not accepted.
- An alert's transitions arrive in event order: a retryable failure holds the whole receiver,
  and the hold is stored, so neither a retry, a pause nor a restart lets a later event overtake.
- Rate limits are sliding windows shared by every receiver of one robot, and a penalty answer
  pauses the robot; both are stored, so a restart honours them (`alerts.ratelimit`).
- Retry-After and backoff count from the answer (or the timeout), never from the request.
- Every message carries an idempotency key that stays the same on every retry: the event's
  `key`, or for a digest a key derived from its events' keys (which its body lists), with
  `#<part>/<parts>` for a part, so a receiver drops what a retry or a restart repeats.

Receivers that forget alerts unless they are re-sent (Alertmanager) get the set of alerts firing
for them re-sent every `resend_interval` and right after start.
"""

from __future__ import annotations

from alerts.outbox.cluster import ClusterOutboxFeed, OutboxItem, ReceiverSender, receiver_topic
from alerts.outbox.dispatcher import NotificationDispatcher
from alerts.outbox.intake import ROUTE_BATCH, DeliveryState
from alerts.outbox.schema import BUSY_TIMEOUT_SECONDS, OUTBOX_DDL

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "OUTBOX_DDL",
    "ROUTE_BATCH",
    "ClusterOutboxFeed",
    "DeliveryState",
    "NotificationDispatcher",
    "OutboxItem",
    "ReceiverSender",
    "receiver_topic",
]
