"""What the outbox tells operators: per-receiver stats and the delivery records, for the API."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from alerts.outbox.intake import DeliveryState
from config.times import from_ns


def stats(conn: sqlite3.Connection, kinds: Mapping[str, str]) -> dict[str, Any]:
    """Per configured receiver (name → type): the count of deliveries in each state, alerts
    firing, whether it is failing, its last error and when."""
    counts = conn.execute(
        "SELECT receiver, state, COUNT(*) FROM deliveries GROUP BY receiver, state"
    ).fetchall()
    firing = dict(
        conn.execute(
            "SELECT receiver, COUNT(*) FROM firing_alerts WHERE status = 'firing' GROUP BY receiver"
        ).fetchall()
    )
    states = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT receiver, failing_since_ns, last_error, last_error_ns FROM receiver_state"
        )
    }
    out: dict[str, Any] = {}
    for name, kind in kinds.items():
        failing_since, last_error, last_error_ns = states.get(name) or _legacy_error(conn, name)
        out[name] = {
            "type": kind,
            **{state.value: 0 for state in DeliveryState},
            "firing": firing.get(name, 0),
            "failing": failing_since is not None,
            "last_error": last_error,
            "last_error_at": from_ns(last_error_ns).isoformat() if last_error_ns is not None else None,
        }
    for name, state, count in counts:
        if name in out:
            out[name][state] = count
    return out


def _legacy_error(conn: sqlite3.Connection, receiver: str) -> tuple[int | None, str | None, int | None]:
    """A receiver without a state row yet (a database from before it): its last error from its deliveries."""
    row = conn.execute(
        "SELECT updated_ns, last_error FROM deliveries WHERE receiver = ? AND last_error IS NOT NULL"
        " ORDER BY updated_ns DESC LIMIT 1",
        (receiver,),
    ).fetchone()
    return (None, row[1], row[0]) if row else (None, None, None)


def deliveries(
    conn: sqlite3.Connection,
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
    return [_delivery_json(row) for row in conn.execute(query, (*params, limit)).fetchall()]


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
