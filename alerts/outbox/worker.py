"""One receiver's deliveries: a queue in event order, held as a whole, sent message by message.

The receiver's pending deliveries go oldest first. Each message (one event, or a digest when
the rate limit has no room for them one by one) is recorded in `outbox_messages` before its
first attempt, with its events and the number of parts its channel splits it into; parts go in
order, each taking a slot of the target's sliding window (`alerts.ratelimit`), and each accepted
part is recorded at once. So a retry resends only what was not accepted, under the same keys,
and the message's deliveries are `delivered` when its last part is.

A retryable failure holds the whole receiver, so a later event never overtakes an earlier one:
for an exponential backoff with full jitter, or the answer's Retry-After if longer, counted
from when the answer (or the timeout) came. A throttling answer (429 with Retry-After, a
robot's rate-limit code) also pauses the target, for every receiver that shares it. Holds and
pauses are in the database, so a restart keeps them. A final failure (4xx, a robot's error
code) fails that message and lets the next go; a delivery past `retry.max_attempts` or
`retry.max_age` fails, and the rest of its message returns to the queue.

A receiver that forgets alerts unless they are re-sent (Alertmanager) gets the alerts it was
last told are firing (`firing_alerts`, updated as messages are delivered) re-sent every
`resend_interval` and right after start, when nothing holds it.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import structlog
from prometheus_client import Counter

from alerts import ratelimit
from alerts.events import AlertEvent
from alerts.notifiers import DeliveryError, DeliveryReason, Notifier, NotifierConfig
from alerts.notify_config import NotifyConfig
from alerts.outbox.intake import NOTIFICATION_DELIVERIES, DeliveryState, event_as_sent, track_firing
from alerts.templates import Notification
from config.sqlite import immediate_transaction
from config.times import ns, to_ns

log = structlog.get_logger(__name__)

NOTIFICATIONS_SENT: Final = Counter(
    "ecowatch_notifications_sent_total",
    "Messages a receiver accepted (a digest counts once, each part of a split message once).",
    ["receiver"],
)
NOTIFICATION_SEND_FAILURES: Final = Counter(
    "ecowatch_notification_send_failures_total",
    "Failed sends, by receiver and reason.",
    ["receiver", "reason"],
)
# A message whose deliveries were partly failed (budget spent) and whose rest went back to the queue.
RELEASED: Final = "released"


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    event_id: int
    attempts: int
    created_ns: int
    raw: str
    event: AlertEvent


@dataclass(slots=True)
class _Message:
    id: int
    parts: int
    parts_done: int
    deliveries: list[_Due]


class Worker:
    """Delivers one receiver's queue; `round` is called by its thread, or by `run_once`."""

    def __init__(
        self,
        config: NotifierConfig,
        notifier: Notifier,
        *,
        settings: NotifyConfig,
        clock: Callable[[], datetime],
        rng: random.Random,
        stop: threading.Event,
    ) -> None:
        self.name = config.name
        self.kind = config.type
        self.notifier = notifier
        self.limit = config.rate_limit
        self.wake = threading.Event()
        self._timeout_ns = ns(config.timeout)
        self._settings = settings
        self._clock = clock
        self._rng = rng
        self._stop = stop
        self.held_until_ns = 0
        self.failing_since_ns: int | None = None
        self.next_resend_ns = 0  # right after start: Alertmanager may have expired what we sent
        self._resend_failures = 0

    # --- state ------------------------------------------------------------------------------------
    def load(self, conn: sqlite3.Connection) -> None:
        """Take up the hold a previous run left (derived from the deliveries for older databases)."""
        row = conn.execute(
            "SELECT held_until_ns, failing_since_ns FROM receiver_state WHERE receiver = ?", (self.name,)
        ).fetchone()
        if row is None:
            (held,) = conn.execute(
                "SELECT MAX(next_attempt_ns) FROM deliveries"
                " WHERE receiver = ? AND state = ? AND attempts > 0",
                (self.name, DeliveryState.PENDING),
            ).fetchone()
            row = (held or 0, None)
        self.held_until_ns, self.failing_since_ns = int(row[0]), row[1]

    def _save(self, conn: sqlite3.Connection, error: tuple[int, str] | None = None) -> None:
        """Write the hold and failing state (and a new last error) in the caller's transaction."""
        conn.execute(
            "INSERT INTO receiver_state"
            " (receiver, held_until_ns, failing_since_ns, last_error, last_error_ns) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (receiver) DO UPDATE SET held_until_ns = excluded.held_until_ns,"
            " failing_since_ns = excluded.failing_since_ns,"
            " last_error = COALESCE(excluded.last_error, receiver_state.last_error),"
            " last_error_ns = COALESCE(excluded.last_error_ns, receiver_state.last_error_ns)",
            (self.name, self.held_until_ns, self.failing_since_ns, error and error[1], error and error[0]),
        )

    def _time(self, floor: datetime) -> datetime:
        """Now on the dispatcher's clock, never before `floor` (run_once's caller may be ahead of it)."""
        return max(floor, self._clock())

    # --- a round ----------------------------------------------------------------------------------
    def round(self, conn: sqlite3.Connection, now: datetime) -> float:
        """Attempt what is due; returns the seconds until something may be due."""
        if to_ns(now) >= self.held_until_ns:
            self._send_queue(conn, now)
        now = self._time(now)
        if self.notifier.resend_interval is not None and to_ns(now) >= self.held_until_ns:
            self._resend_firing(conn, now)
        return self._next_wake(conn, to_ns(self._time(now)))

    def _send_queue(self, conn: sqlite3.Connection, now: datetime) -> None:
        while not self._stop.is_set():
            message = self._open_message(conn) or self._new_message(conn, self._time(now))
            if message is None or not self._send(conn, message, now):
                return

    def _open_message(self, conn: sqlite3.Connection) -> _Message | None:
        """The message begun and not finished (at most one: the queue goes one message at a time)."""
        while True:
            row = conn.execute(
                "SELECT id, parts, parts_done FROM outbox_messages WHERE receiver = ? AND state = ?"
                " ORDER BY id LIMIT 1",
                (self.name, DeliveryState.PENDING),
            ).fetchone()
            if row is None:
                return None
            due = self._load(conn, "d.message_id = ?", (row[0],), -1)
            if due:
                return _Message(row[0], row[1], row[2], due)
            with immediate_transaction(conn):  # its events are gone from the database
                conn.execute("UPDATE outbox_messages SET state = ? WHERE id = ?", (RELEASED, row[0]))

    def _new_message(self, conn: sqlite3.Connection, now: datetime) -> _Message | None:
        """The next message from the queue: the oldest events, alone or as a digest, as the window allows."""
        settings = self._settings
        due = self._load(conn, "d.message_id IS NULL", (), max(100, settings.max_digest_events))
        slots = ratelimit.available(conn, self.notifier.target, self.limit, to_ns(now))
        batches = ratelimit.plan(due, slots, settings.max_digest_events)
        if not batches:
            return None
        batch = batches[0]
        notification = Notification(tuple(d.event for d in batch), now)
        parts = self.notifier.count_parts(notification)
        now_ns = to_ns(now)
        with immediate_transaction(conn):
            cursor = conn.execute(
                "INSERT INTO outbox_messages (receiver, key, state, parts, created_ns, updated_ns)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self.name, notification.key, DeliveryState.PENDING, parts, now_ns, now_ns),
            )
            message_id = cursor.lastrowid
            assert message_id is not None
            conn.executemany(
                "UPDATE deliveries SET message_id = ? WHERE id = ?", [(message_id, d.id) for d in batch]
            )
        if parts > 1:
            log.debug("notification_split", receiver=self.name, key=notification.key, parts=parts)
        return _Message(message_id, parts, 0, batch)

    def _load(
        self, conn: sqlite3.Connection, where: str, params: tuple[object, ...], limit: int
    ) -> list[_Due]:
        rows = conn.execute(
            "SELECT d.id, d.event_id, d.attempts, d.event_created_ns, e.event FROM deliveries d"  # noqa: S608 - fixed clauses
            " LEFT JOIN notification_events e ON e.id = d.event_id"
            f" WHERE d.receiver = ? AND d.state = ? AND {where} ORDER BY d.event_id LIMIT ?",
            (self.name, DeliveryState.PENDING, *params, limit),
        ).fetchall()
        due: list[_Due] = []
        for delivery_id, event_id, attempts, created_ns, raw in rows:
            if raw is None:  # the engine pruned the event before we could send it
                with immediate_transaction(conn):
                    self._finish(
                        conn, [delivery_id], DeliveryState.FAILED, to_ns(self._clock()), "event gone"
                    )
                NOTIFICATION_DELIVERIES.labels(self.name, DeliveryState.FAILED).inc()
                log.error(
                    "notification_failed", receiver=self.name, delivery_id=delivery_id, reason="event_gone"
                )
                continue
            event = event_as_sent(raw, self._settings.external_url)
            due.append(_Due(delivery_id, event_id, attempts, created_ns, raw, event))
        return due

    # --- sending ----------------------------------------------------------------------------------
    def _send(self, conn: sqlite3.Connection, message: _Message, floor: datetime) -> bool:
        """Send the message's parts not yet accepted; False when the round must stop (held, no slot)."""
        notification = Notification(tuple(d.event for d in message.deliveries), floor)
        parts = self.notifier.count_parts(notification)
        if parts != message.parts:  # the template or the limits changed since it was begun
            log.warning(
                "notification_parts_changed",
                receiver=self.name,
                key=notification.key,
                was=message.parts,
                now=parts,
            )
            message.parts, message.parts_done = parts, 0
            with immediate_transaction(conn):
                conn.execute(
                    "UPDATE outbox_messages SET parts = ?, parts_done = 0 WHERE id = ?", (parts, message.id)
                )
        target = self.notifier.target
        for part in range(message.parts_done, parts):
            if self._stop.is_set():
                return False
            start = self._time(floor)
            start_ns = to_ns(start)
            slot = ratelimit.acquire(conn, target, self.limit, start_ns, start_ns + self._timeout_ns)
            if slot is None:
                return False
            try:
                self.notifier.send(replace(notification, now=start, part=part, parts=parts))
            except DeliveryError as exc:
                answered_ns = to_ns(self._time(start))
                ratelimit.settle(conn, slot, answered_ns)
                return self._failed(conn, message, exc, answered_ns)
            answered_ns = to_ns(self._time(start))
            ratelimit.settle(conn, slot, answered_ns)
            self._accepted(conn, message, notification, part + 1, answered_ns)
        return True

    def _accepted(
        self, conn: sqlite3.Connection, message: _Message, notification: Notification, done: int, now_ns: int
    ) -> None:
        message.parts_done = done
        NOTIFICATIONS_SENT.labels(self.name).inc()
        recovered = self.failing_since_ns
        self.failing_since_ns = None
        with immediate_transaction(conn):
            finished = done >= message.parts
            state = DeliveryState.DELIVERED if finished else DeliveryState.PENDING
            conn.execute(
                "UPDATE outbox_messages SET parts_done = ?, state = ?, updated_ns = ? WHERE id = ?",
                (done, state, now_ns, message.id),
            )
            if finished:
                self._finish(conn, [d.id for d in message.deliveries], DeliveryState.DELIVERED, now_ns, None)
                if self.notifier.resend_interval is not None:
                    for d in message.deliveries:
                        track_firing(conn, self.name, d.event_id, d.event, d.raw)
            if recovered is not None:
                self._save(conn)
        if not finished:
            log.debug("notification_part_delivered", receiver=self.name, key=notification.key, part=done)
            return
        NOTIFICATION_DELIVERIES.labels(self.name, DeliveryState.DELIVERED).inc(len(message.deliveries))
        log.debug(
            "notification_delivered", receiver=self.name, key=notification.key, events=len(message.deliveries)
        )
        if recovered is not None:
            log.info(
                "receiver_recovered", receiver=self.name, failed_for_s=round((now_ns - recovered) / 1e9, 1)
            )

    def _failed(self, conn: sqlite3.Connection, message: _Message, exc: DeliveryError, now_ns: int) -> bool:
        """Record a failed attempt; True when the next message may go (the failure was final)."""
        error = f"{exc.reason}: {exc.detail}"
        NOTIFICATION_SEND_FAILURES.labels(self.name, exc.reason).inc()
        deliveries = message.deliveries
        retry = self._settings.retry
        spent = [
            d
            for d in deliveries
            if not exc.retryable
            or (retry.max_attempts is not None and d.attempts + 1 >= retry.max_attempts)
            or now_ns - d.created_ns >= ns(retry.max_age)
        ]
        spent_ids = {d.id for d in spent}
        kept = [d for d in deliveries if d.id not in spent_ids]
        if exc.retryable:
            attempts = max(d.attempts for d in deliveries) + 1
            self.held_until_ns = now_ns + int(self._backoff(attempts, exc.retry_after) * 1e9)
            if self.failing_since_ns is None:
                self.failing_since_ns = now_ns
                log.warning("receiver_failing", receiver=self.name, reason=exc.reason, detail=exc.detail)
            if exc.reason is DeliveryReason.THROTTLED and exc.retry_after is not None:
                until_ns = now_ns + int(exc.retry_after * 1e9)
                ratelimit.pause(conn, self.notifier.target, until_ns, error)
                log.warning("receiver_paused", receiver=self.name, seconds=exc.retry_after, detail=exc.detail)
        with immediate_transaction(conn):
            if spent:
                self._finish(conn, [d.id for d in spent], DeliveryState.FAILED, now_ns, error)
                self._forget_resolved(conn, spent)
            conn.executemany(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_ns = ?, last_error = ?,"
                " updated_ns = ?, message_id = ? WHERE id = ?",
                [(self.held_until_ns, error, now_ns, None if spent else message.id, d.id) for d in kept],
            )
            if spent:
                conn.execute(
                    "UPDATE outbox_messages SET state = ?, updated_ns = ? WHERE id = ?",
                    (RELEASED if kept else DeliveryState.FAILED, now_ns, message.id),
                )
            self._save(conn, (now_ns, error))
        if spent:
            NOTIFICATION_DELIVERIES.labels(self.name, DeliveryState.FAILED).inc(len(spent))
            log.error(
                "notification_failed",
                receiver=self.name,
                keys=[d.event.key for d in spent],
                reason=exc.reason,
                detail=exc.detail,
                attempts=max(d.attempts for d in spent) + 1,
                final=not exc.retryable,
            )
        log.debug(
            "notification_attempt_failed", receiver=self.name, events=len(deliveries), reason=exc.reason
        )
        return not exc.retryable

    def _finish(
        self,
        conn: sqlite3.Connection,
        ids: Sequence[int],
        state: DeliveryState,
        now_ns: int,
        error: str | None,
    ) -> None:
        """Close deliveries, in the caller's transaction."""
        delivered_ns = now_ns if state is DeliveryState.DELIVERED else None
        conn.executemany(
            "UPDATE deliveries SET state = ?, attempts = attempts + 1, delivered_ns = ?,"
            " last_error = COALESCE(?, last_error), updated_ns = ? WHERE id = ?",
            [(state, delivered_ns, error, now_ns, i) for i in ids],
        )

    def _forget_resolved(self, conn: sqlite3.Connection, failed: Sequence[_Due]) -> None:
        """A resolution that will never arrive: stop re-sending the alert, so it expires there."""
        if self.notifier.resend_interval is None:
            return
        for d in failed:
            if d.event.status == "resolved":
                track_firing(conn, self.name, d.event_id, d.event, d.raw)

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        return self._settings.retry.delay(attempts, retry_after, self._rng)

    # --- re-sending the firing set ----------------------------------------------------------------
    def _resend_firing(self, conn: sqlite3.Connection, now: datetime) -> None:
        interval = self.notifier.resend_interval
        now_ns = to_ns(now)
        if interval is None or now_ns < self.next_resend_ns:
            return
        rows = conn.execute(
            "SELECT event FROM firing_alerts WHERE receiver = ? AND status = 'firing' ORDER BY alert_id",
            (self.name,),
        ).fetchall()
        if not rows:
            self.next_resend_ns = now_ns + ns(interval)
            return
        slot = ratelimit.acquire(conn, self.notifier.target, self.limit, now_ns, now_ns + self._timeout_ns)
        if slot is None:
            return
        self.next_resend_ns = now_ns + ns(interval)
        events = tuple(event_as_sent(raw, self._settings.external_url) for (raw,) in rows)
        try:
            self.notifier.send(Notification(events, now, resend=True))
        except DeliveryError as exc:
            answered_ns = to_ns(self._time(now))
            ratelimit.settle(conn, slot, answered_ns)
            self._resend_failed(conn, exc, answered_ns, len(events))
            return
        ratelimit.settle(conn, slot, to_ns(self._time(now)))
        self._resend_failures = 0
        NOTIFICATIONS_SENT.labels(self.name).inc()
        log.debug("firing_resent", receiver=self.name, alerts=len(events))

    def _resend_failed(self, conn: sqlite3.Connection, exc: DeliveryError, now_ns: int, alerts: int) -> None:
        interval = self.notifier.resend_interval
        assert interval is not None
        self._resend_failures += 1
        error = f"{exc.reason}: {exc.detail}"
        NOTIFICATION_SEND_FAILURES.labels(self.name, exc.reason).inc()
        if exc.reason is DeliveryReason.THROTTLED and exc.retry_after is not None:
            ratelimit.pause(conn, self.notifier.target, now_ns + int(exc.retry_after * 1e9), error)
        delay = min(self._backoff(self._resend_failures, exc.retry_after), interval.total_seconds())
        self.next_resend_ns = now_ns + int(delay * 1e9)
        with immediate_transaction(conn):
            self._save(conn, (now_ns, error))
        log.warning(
            "firing_resend_failed", receiver=self.name, reason=exc.reason, detail=exc.detail, alerts=alerts
        )

    # --- waiting ----------------------------------------------------------------------------------
    def _next_wake(self, conn: sqlite3.Connection, now_ns: int) -> float:
        waits = [ns(self._settings.poll_interval)]
        pending = conn.execute(
            "SELECT 1 FROM deliveries WHERE receiver = ? AND state = ? LIMIT 1",
            (self.name, DeliveryState.PENDING),
        ).fetchone()
        resending = self.notifier.resend_interval is not None
        if pending or resending:
            window = ratelimit.wait_ns(conn, self.notifier.target, self.limit, now_ns)
            if pending:
                waits.append(max(self.held_until_ns - now_ns, window))
            if resending:
                waits.append(max(self.next_resend_ns - now_ns, self.held_until_ns - now_ns, window))
        return max(0, min(waits)) / 1e9
