"""The outbox's tables in the alert database, their upgrades, and its connections.

The outbox owns the tables below; the file, its pragmas, its schema version and the engine's
tables belong to `alerts.store` (see its docstring), and every connection here opens with the
store's `SCHEMA`, so the version is checked in one place whichever side opens the file first.

notification_events   the engine's (created by alerts.store), read from `outbox_watermark`
deliveries            one row per (event, receiver): pending → delivered | failed | skipped;
                      `message_id` once the event is in a message
outbox_messages       what one notification to one receiver is: its events (by message_id),
                      how many parts the channel splits it into and how many were accepted;
                      fixed from its first attempt, so a retry re-sends the same parts with
                      the same keys and never a part already accepted
receiver_state        each receiver's hold (backoff from the last answer) and last error, so
                      a restart neither sends early nor lets a later event overtake
firing_alerts         per receiver that re-sends (Alertmanager), the last status of each alert
                      it was told, with the event's id so that an older one never overwrites it
rate_slots, rate_pauses   sliding windows and pauses per target (alerts.ratelimit)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from alerts.ratelimit import RATE_LIMIT_DDL
from alerts.store import SCHEMA
from config.sqlite import immediate_transaction, open_database

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
        message_id INTEGER,
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
        event_id INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'firing',
        PRIMARY KEY (receiver, alert_id)
    )""",
    """CREATE TABLE IF NOT EXISTS outbox_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        receiver TEXT NOT NULL,
        key TEXT NOT NULL,
        state TEXT NOT NULL,
        parts INTEGER NOT NULL,
        parts_done INTEGER NOT NULL DEFAULT 0,
        created_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_messages_open ON outbox_messages (receiver, state, id)",
    """CREATE TABLE IF NOT EXISTS receiver_state (
        receiver TEXT PRIMARY KEY,
        held_until_ns INTEGER NOT NULL DEFAULT 0,
        failing_since_ns INTEGER,
        last_error TEXT,
        last_error_ns INTEGER
    )""",
)
# Columns added since the first release, for databases created before them: (table, column, type).
_ADDED_COLUMNS: Final = (
    ("deliveries", "message_id", "INTEGER"),
    ("firing_alerts", "event_id", "INTEGER NOT NULL DEFAULT 0"),
    ("firing_alerts", "status", "TEXT NOT NULL DEFAULT 'firing'"),
)
# Made after the columns exist (an old table gets its column first).
_INDEXES: Final = ("CREATE INDEX IF NOT EXISTS deliveries_message ON deliveries (message_id)",)
# The engine and the outbox share the database; a writer waits this long for the other.
BUSY_TIMEOUT_SECONDS: Final = 30.0


def connect(path: Path) -> sqlite3.Connection:
    """An autocommit connection (transactions are explicit) to the alert database, created owner-only."""
    return open_database(path, SCHEMA, busy_timeout=BUSY_TIMEOUT_SECONDS)


def create(conn: sqlite3.Connection) -> None:
    """Create the outbox's tables, or bring those of an older release up to date."""
    with immediate_transaction(conn):
        for ddl in (*OUTBOX_DDL, *RATE_LIMIT_DDL):
            conn.execute(ddl)
        for table, column, kind in _ADDED_COLUMNS:
            present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        for ddl in _INDEXES:
            conn.execute(ddl)
