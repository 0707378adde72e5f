"""The notification outbox: the alert engine's events delivered to every receiver at least once.

The engine writes each notification as a row of `notification_events` (`alerts.events`) in the
transaction of its state change. The dispatcher reads that table from a durable watermark,
routes each new event (`alerts.routing`) and records one `deliveries` row per receiver in the
same transaction as the watermark, so an event is routed exactly once and never skipped. A
delivery leaves `pending` only when the receiver accepted it (`delivered`), refused it for good
(`failed`: a 4xx or robot error code that no retry can fix, or the retry budget spent; logged at
error level and shown in `stats()` and the API), or when the event was silenced (`skipped`,
never sent). Pending rows survive restarts and are resumed.

Each receiver has a worker thread of its own, so a receiver that is down or slow delays no
other. Its due deliveries go oldest first, one message each while its token bucket allows,
else together as one digest (`alerts.ratelimit`). A retryable failure (429, 5xx, network error,
timeout, a robot's rate-limit code) holds the receiver for an exponential backoff with full
jitter, or the answer's Retry-After if longer, so a receiver that is down gets one probe per
backoff rather than one request per pending event, and order is kept when it comes back. A
delivery is marked failed after `retry.max_attempts` attempts or `retry.max_age` after its
event was written, whichever comes first.

Receivers that forget alerts unless they are re-sent (Alertmanager) get the set of alerts firing
for them re-sent every `resend_interval` and right after start; the set is the table
`firing_alerts`, kept up to date as events are routed.

Every message carries an idempotency key that stays the same on every retry: the event's `key`,
or for a digest a key derived from its events' keys (which its body lists), so a receiver drops
what a retry or a restart repeats. `run_once(now)` does one round of routing and delivery in
the caller's thread, for tests with a fake clock; do not mix it with `start()`.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import urljoin

import structlog
from prometheus_client import Counter

from alerts.events import EVENTS_TABLE_DDL, AlertEvent
from alerts.notifiers import DeliveryError, Notifier, NotifierConfig, make_notifier
from alerts.notify_config import NotifyConfig
from alerts.ratelimit import TokenBucket, plan
from alerts.routing import Router
from alerts.templates import Notification
from config.sqlite import immediate_transaction
from config.times import from_ns, ns, to_ns
from ingest.http import BadRequest, Handler, Request, int_param, str_param

log = structlog.get_logger(__name__)

OUTBOX_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id INTEGER NOT NULL,
        receiver TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ns INTEGER NOT NULL,
        last_error TEXT,
        delivered_ns INTEGER,
        event_created_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL,
        UNIQUE (event_id, receiver)
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (receiver, state, event_id)",
    "CREATE INDEX IF NOT EXISTS deliveries_updated ON deliveries (updated_ns)",
    """CREATE TABLE IF NOT EXISTS outbox_watermark (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        event_id INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO outbox_watermark (id, event_id) VALUES (0, 0)",
    """CREATE TABLE IF NOT EXISTS firing_alerts (
        receiver TEXT NOT NULL,
        alert_id TEXT NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (receiver, alert_id)
    )""",
)
# Events routed per transaction: bounds how long the engine may wait for the write lock.
ROUTE_BATCH: Final = 500
# The engine and the outbox share the database; a writer waits this long for the other.
BUSY_TIMEOUT_SECONDS: Final = 30.0
PRUNE_EVERY: Final = timedelta(hours=1)

NOTIFICATIONS_SENT: Final = Counter(
    "ecowatch_notifications_sent_total", "Messages a receiver accepted (a digest counts once).", ["receiver"]
)
NOTIFICATION_DELIVERIES: Final = Counter(
    "ecowatch_notification_deliveries_total",
    "Deliveries finished, by receiver and final state (delivered, failed, skipped).",
    ["receiver", "state"],
)
NOTIFICATION_SEND_FAILURES: Final = Counter(
    "ecowatch_notification_send_failures_total",
    "Failed sends, by receiver and reason.",
    ["receiver", "reason"],
)


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    attempts: int
    created_ns: int
    event: AlertEvent


class _Receiver:
    """A receiver's delivery state in memory: its notifier, bucket, hold and re-send timer."""

    def __init__(self, config: NotifierConfig, notifier: Notifier, now_s: float) -> None:
        self.name = config.name
        self.kind = config.type
        self.notifier = notifier
        self.bucket = TokenBucket(config.rate_limit, now_s) if config.rate_limit else None
        self.held_until_ns = 0
        self.failing_since_ns: int | None = None
        self.next_resend_ns = 0  # right after start: Alertmanager may have expired what we sent
        self.resend_failures = 0
        self.last_error: tuple[int, str] | None = None
        self.wake = threading.Event()


class NotificationDispatcher:
    """Routes the engine's events to receivers and delivers them; see the module docstring."""

    def __init__(
        self,
        config: NotifyConfig,
        db_path: Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        http_timeout: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Open (creating if need be) the outbox tables; `http_timeout` caps every receiver's timeout."""
        self.config = config
        self._db_path = Path(db_path)
        self._db_path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._rng = rng or random.Random()
        self._router = Router(config.routes, [r.name for r in config.receivers], config.default_receivers)
        self._stop = threading.Event()
        self._route_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_prune_ns = 0
        self._conn = self._connect()  # the caller's: run_once, stats and start-up
        self._conn_lock = threading.Lock()
        with immediate_transaction(self._conn):
            self._conn.execute(EVENTS_TABLE_DDL)
            for ddl in OUTBOX_DDL:
                self._conn.execute(ddl)
        now_s = to_ns(clock()) / 1e9
        self._receivers = {
            c.name: _Receiver(c, make_notifier(_capped(c, http_timeout)), now_s) for c in config.receivers
        }
        self._load_receiver_state()

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._route_loop, name="notify-router", daemon=True)]
        self._threads += [
            threading.Thread(target=self._deliver_loop, args=(r,), name=f"notify-{r.name}", daemon=True)
            for r in self._receivers.values()
        ]
        for thread in self._threads:
            thread.start()
        log.info("notifications_started", receivers=list(self._receivers), db=str(self._db_path))

    def stop(self, timeout: float) -> None:
        """Stop the workers (a send in flight gets until `timeout`); pending deliveries stay pending."""
        self._stop.set()
        self._route_wake.set()
        for receiver in self._receivers.values():
            receiver.wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in self._threads if t.is_alive()]
        if busy:
            log.warning("notification_workers_still_busy", threads=busy)
        for receiver in self._receivers.values():
            receiver.notifier.close()
        with self._conn_lock:
            self._conn.close()
        log.info("notifications_stopped")

    def wake(self) -> None:
        """Route new events now rather than at the next poll (the engine calls it after a write)."""
        self._route_wake.set()

    def run_once(self, now: datetime) -> None:
        """Route new events and attempt every due delivery, in the caller's thread."""
        with self._conn_lock:
            self._route_new(self._conn, now)
            for receiver in self._receivers.values():
                self._deliver_due(self._conn, receiver, now)

    def _route_loop(self) -> None:
        with closing(self._connect()) as conn:
            while not self._stop.is_set():
                try:
                    if self._route_new(conn, self._clock()):
                        for receiver in self._receivers.values():
                            receiver.wake.set()
                except (sqlite3.Error, OSError):
                    log.exception("notification_routing_failed")
                self._route_wake.wait(self.config.poll_interval.total_seconds())
                self._route_wake.clear()

    def _deliver_loop(self, receiver: _Receiver) -> None:
        poll = self.config.poll_interval.total_seconds()
        with closing(self._connect()) as conn:
            while not self._stop.is_set():
                try:
                    wait = self._deliver_due(conn, receiver, self._clock(), self._clock)
                except (sqlite3.Error, OSError):
                    log.exception("notification_delivery_loop_failed", receiver=receiver.name)
                    wait = poll
                receiver.wake.wait(min(wait, poll))
                receiver.wake.clear()

    # --- routing ---------------------------------------------------------------------------------
    def _route_new(self, conn: sqlite3.Connection, now: datetime) -> int:
        now_ns = to_ns(now)
        routed = 0
        while True:
            with immediate_transaction(conn):
                (mark,) = conn.execute("SELECT event_id FROM outbox_watermark WHERE id = 0").fetchone()
                rows = conn.execute(
                    "SELECT id, key, created_ns, event FROM notification_events"
                    " WHERE id > ? ORDER BY id LIMIT ?",
                    (mark, ROUTE_BATCH),
                ).fetchall()
                for row in rows:
                    self._route_event(conn, row, now_ns)
                if rows:
                    conn.execute("UPDATE outbox_watermark SET event_id = ? WHERE id = 0", (rows[-1][0],))
            routed += len(rows)
            if len(rows) < ROUTE_BATCH:
                break
        if now_ns >= self._next_prune_ns:
            self._prune(conn, now_ns)
        return routed

    def _route_event(self, conn: sqlite3.Connection, row: tuple[int, str, int, str], now_ns: int) -> None:
        event_id, key, created_ns, raw = row
        try:
            event = AlertEvent.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            # The engine wrote something we cannot read: nobody will be told of it.
            log.error("notification_event_unreadable", event_id=event_id, key=key, error=repr(exc)[:300])
            return
        state = DeliveryState.SKIPPED if event.silenced else DeliveryState.PENDING
        for name in self._router.receivers_for(event):
            conn.execute(
                "INSERT OR IGNORE INTO deliveries (event_id, receiver, state, next_attempt_ns,"
                " event_created_ns, updated_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, name, state, now_ns, created_ns, now_ns),
            )
            if state is DeliveryState.SKIPPED:
                NOTIFICATION_DELIVERIES.labels(name, state).inc()
                log.debug("notification_skipped", receiver=name, key=key, reason="silenced")
            if self._receivers[name].notifier.resend_interval is not None:
                _track_firing(conn, name, event, raw)

    def _prune(self, conn: sqlite3.Connection, now_ns: int) -> None:
        self._next_prune_ns = now_ns + ns(PRUNE_EVERY)
        with immediate_transaction(conn):
            conn.execute(
                "DELETE FROM deliveries WHERE state != ? AND updated_ns < ?",
                (DeliveryState.PENDING, now_ns - ns(self.config.retention)),
            )

    # --- delivery --------------------------------------------------------------------------------
    def _deliver_due(
        self,
        conn: sqlite3.Connection,
        receiver: _Receiver,
        now: datetime,
        clock: Callable[[], datetime] | None = None,
    ) -> float:
        """Attempt what is due for one receiver; returns the seconds until something may be due.

        With a `clock`, each attempt is dated when it is made: signatures carry their own time even
        when a long backlog takes minutes to send.
        """
        now_ns = to_ns(now)
        if now_ns >= receiver.held_until_ns:
            due = self._due(conn, receiver.name, now_ns)
            tokens = receiver.bucket.available(now_ns / 1e9) if receiver.bucket else None
            for batch in plan(due, tokens, self.config.max_digest_events):
                if self._stop.is_set():
                    break
                if receiver.bucket:
                    receiver.bucket.take(now_ns / 1e9)
                if not self._attempt(conn, receiver, batch, clock() if clock else now):
                    break  # the receiver is held: the rest waits for the backoff
        if now_ns >= receiver.held_until_ns:
            self._resend_firing(conn, receiver, now)
        return self._next_wake(conn, receiver, now_ns)

    def _event(self, raw: str) -> AlertEvent:
        """An event as it is sent: its relative links made absolute with `external_url`, if set."""
        event = AlertEvent.from_json(json.loads(raw))
        base = self.config.external_url
        if base is None or not event.links:
            return event
        return replace(event, links={name: urljoin(str(base), url) for name, url in event.links.items()})

    def _due(self, conn: sqlite3.Connection, receiver: str, now_ns: int) -> list[_Due]:
        rows = conn.execute(
            "SELECT d.id, d.attempts, d.event_created_ns, e.event FROM deliveries d"
            " LEFT JOIN notification_events e ON e.id = d.event_id"
            " WHERE d.receiver = ? AND d.state = ? AND d.next_attempt_ns <= ? ORDER BY d.event_id LIMIT ?",
            (receiver, DeliveryState.PENDING, now_ns, max(100, self.config.max_digest_events)),
        ).fetchall()
        due: list[_Due] = []
        for delivery_id, attempts, created_ns, raw in rows:
            if raw is None:  # the engine pruned the event before we could send it
                self._finish(conn, [delivery_id], DeliveryState.FAILED, now_ns, "event no longer stored")
                log.error(
                    "notification_failed", receiver=receiver, delivery_id=delivery_id, reason="event_gone"
                )
                continue
            due.append(_Due(delivery_id, attempts, created_ns, self._event(raw)))
        return due

    def _attempt(
        self, conn: sqlite3.Connection, receiver: _Receiver, batch: Sequence[_Due], now: datetime
    ) -> bool:
        """Send one message; False when the receiver must be held (a retryable failure)."""
        notification = Notification(tuple(d.event for d in batch), now)
        try:
            receiver.notifier.send(notification)
        except DeliveryError as exc:
            return self._failed(conn, receiver, batch, exc, to_ns(now))
        ids = [d.id for d in batch]
        now_ns = to_ns(now)
        self._finish(conn, ids, DeliveryState.DELIVERED, now_ns, None)
        NOTIFICATIONS_SENT.labels(receiver.name).inc()
        NOTIFICATION_DELIVERIES.labels(receiver.name, DeliveryState.DELIVERED).inc(len(ids))
        log.debug("notification_delivered", receiver=receiver.name, key=notification.key, events=len(ids))
        if receiver.failing_since_ns is not None:
            failed_for = (now_ns - receiver.failing_since_ns) / 1e9
            log.info("receiver_recovered", receiver=receiver.name, failed_for_s=round(failed_for, 1))
            receiver.failing_since_ns = None
        return True

    def _failed(
        self,
        conn: sqlite3.Connection,
        receiver: _Receiver,
        batch: Sequence[_Due],
        exc: DeliveryError,
        now_ns: int,
    ) -> bool:
        error = f"{exc.reason}: {exc.detail}"
        receiver.last_error = (now_ns, error)
        NOTIFICATION_SEND_FAILURES.labels(receiver.name, exc.reason).inc()
        retry = self.config.retry
        spent = [
            d
            for d in batch
            if not exc.retryable
            or (retry.max_attempts is not None and d.attempts + 1 >= retry.max_attempts)
            or now_ns - d.created_ns >= ns(retry.max_age)
        ]
        if spent:
            self._finish(conn, [d.id for d in spent], DeliveryState.FAILED, now_ns, error)
            NOTIFICATION_DELIVERIES.labels(receiver.name, DeliveryState.FAILED).inc(len(spent))
            log.error(
                "notification_failed",
                receiver=receiver.name,
                keys=[d.event.key for d in spent],
                reason=exc.reason,
                detail=exc.detail,
                attempts=max(d.attempts for d in spent) + 1,
                final=not exc.retryable,
            )
        if not exc.retryable:
            return True  # a refusal of this message says nothing about the next one
        attempts = max(d.attempts for d in batch) + 1
        receiver.held_until_ns = now_ns + int(self._backoff(attempts, exc.retry_after) * 1e9)
        spent_ids = {d.id for d in spent}
        retried = [d.id for d in batch if d.id not in spent_ids]
        with immediate_transaction(conn):
            conn.executemany(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_ns = ?, last_error = ?,"
                " updated_ns = ? WHERE id = ?",
                [(receiver.held_until_ns, error, now_ns, i) for i in retried],
            )
        if receiver.failing_since_ns is None:
            receiver.failing_since_ns = now_ns
            log.warning("receiver_failing", receiver=receiver.name, reason=exc.reason, detail=exc.detail)
        log.debug("notification_attempt_failed", receiver=receiver.name, events=len(batch), reason=exc.reason)
        return False

    def _finish(
        self,
        conn: sqlite3.Connection,
        ids: Sequence[int],
        state: DeliveryState,
        now_ns: int,
        error: str | None,
    ) -> None:
        delivered_ns = now_ns if state is DeliveryState.DELIVERED else None
        with immediate_transaction(conn):
            conn.executemany(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, delivered_ns = ?,"
                " last_error = COALESCE(?, last_error), updated_ns = ? WHERE id = ?",
                [(state, delivered_ns, error, now_ns, i) for i in ids],
            )

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        """Full jitter below the capped exponential, or the receiver's Retry-After if longer."""
        retry = self.config.retry
        cap = min(
            retry.max_delay.total_seconds(), retry.initial_delay.total_seconds() * 2 ** min(attempts - 1, 40)
        )
        delay = self._rng.uniform(0.0, cap)
        return max(delay, retry_after) if retry_after is not None else delay

    def _resend_firing(self, conn: sqlite3.Connection, receiver: _Receiver, now: datetime) -> None:
        interval = receiver.notifier.resend_interval
        now_ns = to_ns(now)
        if interval is None or now_ns < receiver.next_resend_ns:
            return
        rows = conn.execute(
            "SELECT event FROM firing_alerts WHERE receiver = ? ORDER BY alert_id", (receiver.name,)
        ).fetchall()
        if rows and receiver.bucket is not None and not receiver.bucket.take(now_ns / 1e9):
            return
        receiver.next_resend_ns = now_ns + ns(interval)
        if not rows:
            return
        events = tuple(self._event(raw) for (raw,) in rows)
        try:
            receiver.notifier.send(Notification(events, now, resend=True))
        except DeliveryError as exc:
            receiver.resend_failures += 1
            receiver.last_error = (now_ns, f"{exc.reason}: {exc.detail}")
            NOTIFICATION_SEND_FAILURES.labels(receiver.name, exc.reason).inc()
            delay = min(self._backoff(receiver.resend_failures, exc.retry_after), interval.total_seconds())
            receiver.next_resend_ns = now_ns + int(delay * 1e9)
            log.warning(
                "firing_resend_failed",
                receiver=receiver.name,
                reason=exc.reason,
                detail=exc.detail,
                alerts=len(events),
            )
            return
        receiver.resend_failures = 0
        NOTIFICATIONS_SENT.labels(receiver.name).inc()
        log.debug("firing_resent", receiver=receiver.name, alerts=len(events))

    def _next_wake(self, conn: sqlite3.Connection, receiver: _Receiver, now_ns: int) -> float:
        waits = [self.config.poll_interval.total_seconds()]
        (next_ns,) = conn.execute(
            "SELECT MIN(next_attempt_ns) FROM deliveries WHERE receiver = ? AND state = ?",
            (receiver.name, DeliveryState.PENDING),
        ).fetchone()
        if next_ns is not None:
            wait = (max(next_ns, receiver.held_until_ns) - now_ns) / 1e9
            if wait <= 0 and receiver.bucket is not None:
                wait = receiver.bucket.wait(now_ns / 1e9)
            waits.append(wait)
        if receiver.notifier.resend_interval is not None:
            waits.append((max(receiver.next_resend_ns, receiver.held_until_ns) - now_ns) / 1e9)
        return max(0.0, min(waits))

    # --- reading ---------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Per receiver: type, pending, delivered, failed, skipped, firing, failing, last error."""
        with closing(self._connect()) as conn:
            counts = conn.execute(
                "SELECT receiver, state, COUNT(*) FROM deliveries GROUP BY receiver, state"
            ).fetchall()
            firing = dict(
                conn.execute("SELECT receiver, COUNT(*) FROM firing_alerts GROUP BY receiver").fetchall()
            )
        out: dict[str, Any] = {}
        for name, receiver in self._receivers.items():
            last = receiver.last_error
            out[name] = {
                "type": receiver.kind,
                **{state.value: 0 for state in DeliveryState},
                "firing": firing.get(name, 0),
                "failing": receiver.failing_since_ns is not None,
                "last_error": last[1] if last else None,
                "last_error_at": from_ns(last[0]).isoformat() if last else None,
            }
        for name, state, count in counts:
            if name in out:
                out[name][state] = count
        return out

    def deliveries(
        self,
        *,
        receiver: str | None = None,
        state: str | None = None,
        key: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Delivery records, oldest first, with their event's identity."""
        where: list[str] = ["d.id > ?"]
        params: list[object] = [after_id]
        for column, value in (("d.receiver", receiver), ("d.state", state), ("e.key", key)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        query = (
            "SELECT d.id, d.event_id, e.key, e.event, d.receiver, d.state, d.attempts, d.next_attempt_ns,"  # noqa: S608 - placeholders only
            " d.last_error, d.delivered_ns, d.updated_ns FROM deliveries d"
            " LEFT JOIN notification_events e ON e.id = d.event_id"
            f" WHERE {' AND '.join(where)} ORDER BY d.id LIMIT ?"
        )
        with closing(self._connect()) as conn:
            rows = conn.execute(query, (*params, limit)).fetchall()
        return [_delivery_json(row) for row in rows]

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("GET", "/api/v1/notifications"): self._notifications_api}

    def _notifications_api(self, request: Request) -> tuple[int, Any]:
        state = str_param(request.query, "state")
        if state is not None and state not in set(DeliveryState):
            raise BadRequest(f"state must be one of {', '.join(DeliveryState)}")
        rows = self.deliveries(
            receiver=str_param(request.query, "receiver"),
            state=state,
            key=str_param(request.query, "key", max_length=300),
            after_id=int_param(request.query, "after_id", 0, 0, 2**62),
            limit=int_param(request.query, "limit", 100, 1, 1000),
        )
        return 200, {"notifications": rows, "receivers": self.stats()}

    # --- storage ---------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._db_path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _load_receiver_state(self) -> None:
        pending = self._conn.execute(
            "SELECT receiver, COUNT(*) FROM deliveries WHERE state = ? GROUP BY receiver",
            (DeliveryState.PENDING,),
        ).fetchall()
        for name, count in pending:
            if name not in self._receivers:  # kept, in case the receiver comes back to the configuration
                log.warning("notification_receiver_removed", receiver=name, pending=count)
        for name, receiver in self._receivers.items():
            row = self._conn.execute(
                "SELECT updated_ns, last_error FROM deliveries WHERE receiver = ? AND last_error IS NOT NULL"
                " ORDER BY updated_ns DESC LIMIT 1",
                (name,),
            ).fetchone()
            if row is not None:
                receiver.last_error = (row[0], row[1])


def _track_firing(conn: sqlite3.Connection, receiver: str, event: AlertEvent, raw: str) -> None:
    """Keep the receiver's set of firing alerts: silenced events add nothing, a resolution removes."""
    if event.status == "resolved":
        conn.execute(
            "DELETE FROM firing_alerts WHERE receiver = ? AND alert_id = ?", (receiver, event.alert_id)
        )
    elif not event.silenced:
        conn.execute(
            "INSERT OR REPLACE INTO firing_alerts (receiver, alert_id, event) VALUES (?, ?, ?)",
            (receiver, event.alert_id, raw),
        )


def _delivery_json(row: tuple[Any, ...]) -> dict[str, Any]:
    delivery_id, event_id, key, raw, receiver, state, attempts, next_ns, error, delivered_ns, updated_ns = row
    event: dict[str, Any] = json.loads(raw) if raw else {}
    station = event.get("station") or {}
    return {
        "id": delivery_id,
        "event_id": event_id,
        "key": key,
        "receiver": receiver,
        "state": state,
        "attempts": attempts,
        "next_attempt_at": from_ns(next_ns).isoformat() if state == DeliveryState.PENDING else None,
        "last_error": error,
        "delivered_at": from_ns(delivered_ns).isoformat() if delivered_ns else None,
        "updated_at": from_ns(updated_ns).isoformat(),
        "alert_id": event.get("alert_id"),
        "rule": event.get("rule"),
        "status": event.get("status"),
        "severity": event.get("severity"),
        "station_id": station.get("id"),
    }


def _capped(config: NotifierConfig, http_timeout: float | None) -> NotifierConfig:
    if http_timeout is None:
        return config
    return config.model_copy(update={"timeout": min(config.timeout, timedelta(seconds=http_timeout))})
