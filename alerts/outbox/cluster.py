"""The outbox in cluster mode: a partition's events into the outbox stream, one receiver's out of it.

    ClusterOutboxFeed   on a partition's owner: the events of its alert database past a durable
                        watermark (`cluster_outbox_watermark`, in the same file), routed as the
                        single-node intake routes them, as one `OutboxItem` per (event, receiver)
    ReceiverSender      on every worker, `deliver` of that receiver's `ReceiverDispatch`
                        (ingest.cluster.outbox): the message rendered and sent by the receiver's
                        notifier, part by part, within its rate limit

The stream, its deduplication and the one-dispatcher-per-receiver lease are `ingest.cluster.outbox`
(bytes in, bytes out); the composition root joins the two (alerts may not import ingest.cluster):

    feed = ClusterOutboxFeed(notify, partition_db)                    # the partition's owner
    while items := feed.pending():
        for item in items:
            stream.publish(item.key, item.payload, topic=item.topic)
        feed.forwarded(items[-1].event_id)        # after every item up to that event is stored
    sender = ReceiverSender(notify, name)                              # every worker, each receiver
    ReceiverDispatch(servers, receiver_topic(name), sender.deliver, topics=[receiver_topic(name)],
                     start_at="all")      # else what was published before the consumer existed is skipped

Routing is the intake's (`alerts.routing.Router`: routes, default receivers, the receivers an
event names itself); a silenced event is not published at all (single-node records it
`skipped`; here the skip is counted in `ecowatch_notification_deliveries_total{state="skipped"}`
and the event stays in the engine's history). A crash between `publish` and `forwarded` publishes
the same items again under the same keys, `<event key>@<topic>`, which the stream drops within
its duplicate window. An event key that would not make a valid stream id (longer than 256
characters with its topic, or not printable ASCII) is replaced by a hash of it there; the message
still carries the event and its key.

A receiver's topic is its name when the name is a stream token (`^[-_A-Za-z0-9]{1,32}$`), else
`r-` and 30 hex digits of the SHA-256 of the name (names of the `r-<30 hex>` form are hashed
too, so a name never takes another's hash).

What a receiver gets is what the single-node outbox sends for one event: the same templates (in
Chinese by default), the same idempotency key (the event's key, `#<part>/<parts>` for the parts
of a split message), parts accepted never sent again on a retry by this worker (remembered in
memory by message key: after the lease moved, the next worker starts the message over and the
receiver drops the repeated parts by key). A message this worker already delivered, or refused
for good, comes back (an ack lost) → True without sending. Differences, all from the stream
keeping one message out per receiver:
- No digests: each event is one message. When the receiver's `rate_limit` has no room, a wait
  up to `max_wait` (default 1 s, the dispatcher's retry delay) is slept out, a longer one makes
  `deliver` return False: the message comes back later, still first in line.
- The sliding window (`alerts.ratelimit` over an in-memory database) is this sender's: two
  receivers of one robot do not share it (give each its share of the robot's limit), and after
  the lease moves the new holder starts with an empty window, so the robot may see up to two
  windows' worth within one `per`; its throttling answer then holds the receiver (below).
- A retryable failure (`DeliveryError.retryable`) returns False and holds the receiver, in
  memory, for the backoff of `notify.retry` (full jitter, or Retry-After if longer) counted from
  the answer; a hold longer than `max_wait` makes `deliver` return False without sending. Past
  `retry.max_attempts` or `retry.max_age` (from the event's creation) the message is given up
  like a final refusal.
- A final refusal (4xx, a robot's error code) is logged at error level (`notification_failed`),
  counted (`refused`, and the deliveries metric as `failed`) and answered True: it would never
  succeed, and holding the receiver would stop every later alert.
- Alertmanager receivers get each event once, nothing re-sends the firing set: Alertmanager
  resolves a firing alert by itself 4 × `resend_interval` after the last event that told it
  (the alert's firing event or a reminder), so give rules a `renotify_interval` below that for
  alerts that must stay active there.
"""

from __future__ import annotations

import hashlib
import random
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, NamedTuple

import orjson
import structlog

from alerts import ratelimit
from alerts.events import AlertEvent
from alerts.notifiers import DeliveryError, Notification, make_notifier
from alerts.notify_config import NotifyConfig
from alerts.outbox import schema
from alerts.outbox.intake import NOTIFICATION_DELIVERIES, DeliveryState, event_as_sent
from alerts.outbox.worker import NOTIFICATION_SEND_FAILURES, NOTIFICATIONS_SENT
from alerts.routing import Router
from config.sqlite import immediate_transaction
from config.times import ns, to_ns

log = structlog.get_logger(__name__)

# The stream's names for subjects, consumers and leases (ingest.cluster.outbox checks the same).
TOPIC_PATTERN: Final = re.compile(r"[-_A-Za-z0-9]{1,32}")
# What a hashed topic looks like; a name of this form is hashed too, so it cannot take another's hash.
_HASHED: Final = re.compile(r"r-[0-9a-f]{30}")
# The stream's dedup id (Nats-Msg-Id): at most 256 characters, no line breaks.
MAX_KEY_CHARS: Final = 256
WATERMARK_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS cluster_outbox_watermark (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        event_id INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO cluster_outbox_watermark (id, event_id) VALUES (0, 0)",
)
# Messages whose progress (parts accepted) or outcome a sender remembers: one is in flight per
# receiver, the rest only matter when an ack was lost and the message comes back.
_PROGRESS_MEMORY: Final = 64
_DONE_MEMORY: Final = 1024


class OutboxItem(NamedTuple):
    event_id: int  # notification_events.id in the partition's alert database
    receiver: str  # the receiver's name (notify.receivers[].name)
    topic: str  # receiver_topic(receiver): the stream subject token
    key: str  # the stream's dedup id, f"{event.key}@{topic}"
    payload: bytes  # what ReceiverSender.deliver gets back: JSON of the receiver and the event


def receiver_topic(name: str) -> str:
    """The stream token of a receiver: its name if that is one, else `r-` and a hash of the name."""
    if TOPIC_PATTERN.fullmatch(name) and not _HASHED.fullmatch(name):
        return name
    return "r-" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:30]


def stream_key(event_key: str, topic: str) -> str:
    """The dedup id of an event's message to a topic: `<event key>@<topic>`, the key hashed if need be."""
    key = f"{event_key}@{topic}"
    if len(key) <= MAX_KEY_CHARS and key.isascii() and key.isprintable():
        return key
    return f"h-{hashlib.sha256(event_key.encode('utf-8', 'surrogatepass')).hexdigest()}@{topic}"


class ClusterOutboxFeed:
    """One partition's events, routed, past the forwarded watermark (stored in the same database)."""

    def __init__(self, config: NotifyConfig, db_path: Path) -> None:
        self._router = Router(config.routes, [r.name for r in config.receivers], config.default_receivers)
        self._topics = {r.name: receiver_topic(r.name) for r in config.receivers}
        self._lock = threading.Lock()
        self._conn = schema.connect(Path(db_path))
        with immediate_transaction(self._conn):
            for ddl in WATERMARK_DDL:
                self._conn.execute(ddl)
        # Events up to here were counted and logged (pending() may return them more than once).
        self._reported = 0

    def watermark(self) -> int:
        """The id of the last event forwarded (0: none yet)."""
        with self._lock:
            return self._watermark()

    def pending(self, limit: int = 500) -> list[OutboxItem]:
        """The items of the next events past the watermark (at most `limit` events), in event order.

        Events that give nothing to publish (silenced, routed nowhere, unreadable) ahead of the
        first that does are forwarded at once, so a long run of them is read once.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._lock:
            after = self._watermark()
            items: list[OutboxItem] = []
            while True:
                rows = self._conn.execute(
                    "SELECT id, created_ns, event FROM notification_events WHERE id > ? ORDER BY id LIMIT ?",
                    (after, limit),
                ).fetchall()
                nothing_through = after
                for event_id, created_ns, raw in rows:
                    routed = self._items(event_id, created_ns, raw)
                    items.extend(routed)
                    if not items:
                        nothing_through = event_id
                self._reported = max(self._reported, rows[-1][0] if rows else 0)
                if nothing_through > after:
                    self._move(nothing_through)
                if items or len(rows) < limit:
                    return items
                after = rows[-1][0]

    def forwarded(self, event_id: int) -> None:
        """Every item of the events up to `event_id` is in the stream: move the watermark (never back)."""
        with self._lock:
            self._move(event_id)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _watermark(self) -> int:
        (mark,) = self._conn.execute("SELECT event_id FROM cluster_outbox_watermark WHERE id = 0").fetchone()
        return int(mark)

    def _move(self, event_id: int) -> None:
        with immediate_transaction(self._conn):
            self._conn.execute(
                "UPDATE cluster_outbox_watermark SET event_id = ? WHERE id = 0 AND event_id < ?",
                (event_id, event_id),
            )

    def _items(self, event_id: int, created_ns: int, raw: str) -> list[OutboxItem]:
        """The event's (event, receiver) items, as the intake routes it; none when silenced."""
        first_time = event_id > self._reported
        try:
            data = orjson.loads(raw)
            event = AlertEvent.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            if first_time:  # the engine wrote something we cannot read: nobody will be told of it
                log.error("notification_event_unreadable", event_id=event_id, error=repr(exc)[:300])
            return []
        receivers = self._router.receivers_for(event)
        if event.silenced:
            if first_time:
                for name in receivers:
                    NOTIFICATION_DELIVERIES.labels(name, DeliveryState.SKIPPED).inc()
                    log.debug("notification_skipped", receiver=name, key=event.key, reason="silenced")
            return []
        items = []
        for name in receivers:
            topic = self._topics[name]
            body = {"receiver": name, "event_id": event_id, "created_ns": created_ns, "event": data}
            items.append(OutboxItem(event_id, name, topic, stream_key(event.key, topic), orjson.dumps(body)))
        return items


@dataclass(slots=True)
class _Progress:
    parts: int
    done: int = 0
    attempts: int = 0


class _Message(NamedTuple):
    event: AlertEvent
    created_ns: int


class ReceiverSender:
    """Delivers one receiver's outbox messages: the payload rendered by the channel's notifier."""

    def __init__(
        self,
        config: NotifyConfig,
        receiver: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        """`max_wait`: seconds a rate limit or a hold is waited out within `deliver` before it says False."""
        try:
            receiver_config = config.receiver(receiver)
        except KeyError:
            raise ValueError(f"no receiver named {receiver!r} in notify.receivers") from None
        self.receiver = receiver
        self._config = config
        self._notifier = make_notifier(receiver_config)
        self._limit = receiver_config.rate_limit
        self._timeout_ns = ns(receiver_config.timeout)
        self._clock = clock
        self._sleep = sleep
        self._max_wait_ns = int(max_wait * 1e9)
        self._rng = rng or random.Random()
        self._lock = threading.Lock()  # one delivery at a time
        self._counts_lock = threading.Lock()  # stats() reads from other threads, also during a send
        # The sliding window, with alerts.ratelimit's semantics, in memory (see the module docstring).
        self._window = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        with immediate_transaction(self._window):
            for ddl in ratelimit.RATE_LIMIT_DDL:
                self._window.execute(ddl)
        self._held_until_ns = 0
        self._failing_since_ns: int | None = None
        self._progress: OrderedDict[str, _Progress] = OrderedDict()
        self._done: OrderedDict[str, None] = OrderedDict()
        self._counts = dict.fromkeys(
            ("delivered", "retried", "refused", "parts_sent", "deferred", "repeated"), 0
        )

    def deliver(self, key: str, payload: bytes) -> bool:
        """True: delivered, or refused for good (logged); False: not now, give it back for later."""
        # Without its stream id (never, from ReceiverDispatch) the message is known by its content.
        key = key or f"sha256:{hashlib.sha256(payload).hexdigest()}"
        with self._lock:
            if key in self._done:
                self._count("repeated")
                log.debug("notification_repeat_ignored", receiver=self.receiver, key=key)
                return True
            message = self._message(key, payload)
            if message is None:
                self._finish(key, "refused")
                return True
            return self._send(key, message)

    def stats(self) -> dict[str, int]:
        """delivered, retried (retryable failures), refused (given up), parts_sent (requests
        accepted), deferred (False without a request: rate limit or hold), repeated (a message
        already delivered or refused here came back)."""
        with self._counts_lock:
            return dict(self._counts)

    def close(self) -> None:
        with self._lock:
            self._notifier.close()
            self._window.close()

    # --- one message ------------------------------------------------------------------------------
    def _message(self, key: str, payload: bytes) -> _Message | None:
        """The event a payload carries, as it is sent; None (logged) when it is not for us or unreadable."""
        try:
            document = orjson.loads(payload)
            receiver = document["receiver"]
            created_ns = int(document["created_ns"])
            event = event_as_sent(orjson.dumps(document["event"]).decode(), self._config.external_url)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("notification_unreadable", receiver=self.receiver, key=key, error=repr(exc)[:300])
            return None
        if receiver != self.receiver:  # two receivers' topics collided, or the consumer's filter is wrong
            log.error("notification_misrouted", receiver=self.receiver, key=key, addressed_to=receiver)
            return None
        return _Message(event, created_ns)

    def _send(self, key: str, message: _Message) -> bool:
        notification = Notification((message.event,), self._clock())
        parts = self._notifier.count_parts(notification)
        progress = self._progress.pop(key, None) or _Progress(parts)
        self._progress[key] = progress  # the newest last: the oldest is forgotten first
        while len(self._progress) > _PROGRESS_MEMORY:
            self._progress.popitem(last=False)
        if progress.parts != parts:  # the template or the limits changed since it was begun
            log.warning(
                "notification_parts_changed", receiver=self.receiver, key=key, was=progress.parts, now=parts
            )
            progress.parts, progress.done = parts, 0
        target = self._notifier.target
        for part in range(progress.done, parts):
            start = self._room()
            if start is None:
                self._count("deferred")
                return False
            start_ns = to_ns(start)
            slot = ratelimit.acquire(self._window, target, self._limit, start_ns, start_ns + self._timeout_ns)
            if slot is None:  # _room said there was room: only a clock running backwards gets here
                self._count("deferred")
                return False
            try:
                self._notifier.send(replace(notification, now=start, part=part, parts=parts))
            except DeliveryError as exc:
                answered_ns = to_ns(max(start, self._clock()))
                ratelimit.settle(self._window, slot, answered_ns)
                return self._failed(key, message, progress, exc, answered_ns)
            ratelimit.settle(self._window, slot, to_ns(max(start, self._clock())))
            progress.done = part + 1
            self._count("parts_sent")
            NOTIFICATIONS_SENT.labels(self.receiver).inc()
        self._delivered(key, message)
        return True

    def _room(self) -> datetime | None:
        """Now, once the hold is over and the window has room; None if that is more than max_wait away."""
        now = self._clock()
        deadline_ns = to_ns(now) + self._max_wait_ns
        for _ in range(3):  # a clock that does not move (or a sleep cut short) must not spin here
            now_ns = to_ns(now)
            window_ns = ratelimit.wait_ns(self._window, self._notifier.target, self._limit, now_ns)
            wait_ns = max(self._held_until_ns - now_ns, window_ns)
            if wait_ns <= 0:
                return now
            if now_ns + wait_ns > deadline_ns:
                return None
            self._sleep(-(-wait_ns // 1000) / 1e6)  # whole microseconds, rounded up: datetime's resolution
            now = max(now, self._clock())
        return None

    def _delivered(self, key: str, message: _Message) -> None:
        self._finish(key, "delivered")
        NOTIFICATION_DELIVERIES.labels(self.receiver, DeliveryState.DELIVERED).inc()
        log.debug("notification_delivered", receiver=self.receiver, key=message.event.key, events=1)
        recovered, self._failing_since_ns = self._failing_since_ns, None
        if recovered is not None:
            failed_for = (to_ns(self._clock()) - recovered) / 1e9
            log.info("receiver_recovered", receiver=self.receiver, failed_for_s=round(failed_for, 1))

    def _failed(
        self, key: str, message: _Message, progress: _Progress, exc: DeliveryError, answered_ns: int
    ) -> bool:
        """Record a failed attempt; True when the message is given up (final, or its budget spent)."""
        NOTIFICATION_SEND_FAILURES.labels(self.receiver, exc.reason).inc()
        progress.attempts += 1
        retry = self._config.retry
        spent = (
            not exc.retryable
            or (retry.max_attempts is not None and progress.attempts >= retry.max_attempts)
            or answered_ns - message.created_ns >= ns(retry.max_age)
        )
        if spent:
            self._finish(key, "refused")
            NOTIFICATION_DELIVERIES.labels(self.receiver, DeliveryState.FAILED).inc()
            log.error(
                "notification_failed",
                receiver=self.receiver,
                keys=[message.event.key],
                reason=exc.reason,
                detail=exc.detail,
                attempts=progress.attempts,
                final=not exc.retryable,
            )
            return True
        self._count("retried")
        self._held_until_ns = answered_ns + int(self._backoff(progress.attempts, exc.retry_after) * 1e9)
        if self._failing_since_ns is None:
            self._failing_since_ns = answered_ns
            log.warning("receiver_failing", receiver=self.receiver, reason=exc.reason, detail=exc.detail)
        log.debug("notification_attempt_failed", receiver=self.receiver, key=key, reason=exc.reason)
        return False

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        return self._config.retry.delay(attempts, retry_after, self._rng)

    def _finish(self, key: str, outcome: str) -> None:
        self._progress.pop(key, None)
        self._done[key] = None
        while len(self._done) > _DONE_MEMORY:
            self._done.popitem(last=False)
        self._count(outcome)

    def _count(self, what: str) -> None:
        with self._counts_lock:
            self._counts[what] += 1
