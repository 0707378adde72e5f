"""Intake: the engine's new events, routed to receivers as `deliveries` rows, exactly once.

The dispatcher reads `notification_events` from its durable watermark and records one delivery
per receiver in the same transaction as the new watermark, so an event is routed exactly once
and never skipped. A silenced event's deliveries are `skipped` at once and never sent.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from dataclasses import replace
from enum import StrEnum
from typing import Final
from urllib.parse import urljoin

import structlog
from prometheus_client import Counter
from pydantic import AnyHttpUrl

from alerts.events import AlertEvent
from alerts.routing import Router
from config.sqlite import immediate_transaction

log = structlog.get_logger(__name__)

# Events routed per transaction: bounds how long the engine may wait for the write lock.
ROUTE_BATCH: Final = 500

NOTIFICATION_DELIVERIES: Final = Counter(
    "ecowatch_notification_deliveries_total",
    "Deliveries finished, by receiver and final state (delivered, failed, skipped).",
    ["receiver", "state"],
)


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"


def route_new(conn: sqlite3.Connection, router: Router, resending: Collection[str], now_ns: int) -> int:
    """Route every event past the watermark; the number routed. `resending`: receivers whose
    firing set is tracked (those that re-send it, Alertmanager)."""
    routed = 0
    while True:
        with immediate_transaction(conn):
            (mark,) = conn.execute("SELECT event_id FROM outbox_watermark WHERE id = 0").fetchone()
            rows = conn.execute(
                "SELECT id, key, created_ns, event FROM notification_events WHERE id > ? ORDER BY id LIMIT ?",
                (mark, ROUTE_BATCH),
            ).fetchall()
            for row in rows:
                _route_event(conn, router, resending, row, now_ns)
            if rows:
                conn.execute("UPDATE outbox_watermark SET event_id = ? WHERE id = 0", (rows[-1][0],))
        routed += len(rows)
        if len(rows) < ROUTE_BATCH:
            return routed


def _route_event(
    conn: sqlite3.Connection,
    router: Router,
    resending: Collection[str],
    row: tuple[int, str, int, str],
    now_ns: int,
) -> None:
    event_id, key, created_ns, raw = row
    try:
        event = AlertEvent.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        # The engine wrote something we cannot read: nobody will be told of it.
        log.error("notification_event_unreadable", event_id=event_id, key=key, error=repr(exc)[:300])
        return
    state = DeliveryState.SKIPPED if event.silenced else DeliveryState.PENDING
    for name in router.receivers_for(event):
        conn.execute(
            "INSERT OR IGNORE INTO deliveries (event_id, receiver, state, next_attempt_ns,"
            " event_created_ns, updated_ns) VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, name, state, now_ns, created_ns, now_ns),
        )
        if state is DeliveryState.SKIPPED:
            NOTIFICATION_DELIVERIES.labels(name, state).inc()
            log.debug("notification_skipped", receiver=name, key=key, reason="silenced")
            if name in resending and event.status == "resolved":
                track_firing(conn, name, event_id, event, raw)


def track_firing(conn: sqlite3.Connection, receiver: str, event_id: int, event: AlertEvent, raw: str) -> None:
    """Record what the receiver was last told of an alert, unless it already knows a later event."""
    status = "firing" if event.status == "firing" and not event.silenced else "resolved"
    conn.execute(
        "INSERT INTO firing_alerts (receiver, alert_id, event, event_id, status) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (receiver, alert_id) DO UPDATE SET event = excluded.event,"
        " event_id = excluded.event_id, status = excluded.status"
        " WHERE excluded.event_id > firing_alerts.event_id",
        (receiver, event.alert_id, raw, event_id, status),
    )


def prune(conn: sqlite3.Connection, now_ns: int, retention_ns: int) -> None:
    """Forget finished deliveries and messages past the retention, and resolved alerts no older
    pending event can bring back."""
    with immediate_transaction(conn):
        conn.execute(
            "DELETE FROM deliveries WHERE state != ? AND updated_ns < ?",
            (DeliveryState.PENDING, now_ns - retention_ns),
        )
        conn.execute(
            "DELETE FROM outbox_messages WHERE state != ? AND updated_ns < ?",
            (DeliveryState.PENDING, now_ns - retention_ns),
        )
        conn.execute(
            "DELETE FROM firing_alerts WHERE status = 'resolved' AND event_id < COALESCE((SELECT"
            " MIN(d.event_id) FROM deliveries d WHERE d.receiver = firing_alerts.receiver AND d.state = ?),"
            " 9223372036854775807)",
            (DeliveryState.PENDING,),
        )


def event_as_sent(raw: str, external_url: AnyHttpUrl | None) -> AlertEvent:
    """An event as it is sent: its relative links made absolute with `external_url`, if set."""
    event = AlertEvent.from_json(json.loads(raw))
    if external_url is None or not event.links:
        return event
    return replace(event, links={name: urljoin(str(external_url), url) for name, url in event.links.items()})
