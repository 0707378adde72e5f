"""The dead-letter file: its schema (owned here), and the move from schema 1.

The store opens it with `config.sqlite.open_database(path, SCHEMA, ...)`: owner-only whatever
the umask (it holds raw packets, HJ 212 passwords included), WAL, synchronous=FULL (a dead
letter is the only copy of a rejected message once the raw log moves on), the version check;
`SCHEMA` adds incremental auto-vacuum on a new file and the upgrade from schema 1 below.

Schema 2 keeps a rejected message once (`messages`: payload, topic, raw-log offset, how many
rejections it had and how many of them were `omitted` rather than stored as rows) and its
rejections as small rows (`deadletters`: reason, detail, station, parameter) pointing at it.
`reason_counts` counts every rejection ever added, stored or not, and `meta` holds the highest
raw-log offset counted (`counted_through`), which makes re-processing after a crash count nothing
twice even for messages the quota kept out.

Schema 1 (one table, one row per rejection, each with its own copy of the payload) is moved to
schema 2 when the file is opened: the rows keep their ids, the rows of one raw-log offset share
one message, the counts are taken from the rows. The file is then vacuumed once, which also
turns on incremental vacuuming, so it shrinks to what it holds now.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Final

import structlog

from config.sqlite import Schema, immediate_transaction

log = structlog.get_logger(__name__)

SCHEMA_VERSION: Final = 2
# The daemon and the `ecowatch deadletter` commands open the file at once; a writer waits this
# long for the other's write to finish (theirs are short) before the write fails.
BUSY_TIMEOUT_SECONDS: Final = 2.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_ns INTEGER NOT NULL,
    topic TEXT NOT NULL,
    format TEXT,
    payload BLOB NOT NULL,
    source_offset INTEGER UNIQUE,
    rejections INTEGER NOT NULL,
    omitted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_received ON messages (received_ns);
CREATE TABLE IF NOT EXISTS deadletters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages (id),
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    station_id TEXT,
    parameter TEXT,
    replayed_ns INTEGER
);
CREATE INDEX IF NOT EXISTS rows_message ON deadletters (message_id);
CREATE INDEX IF NOT EXISTS rows_reason ON deadletters (reason);
CREATE TABLE IF NOT EXISTS reason_counts (
    reason TEXT PRIMARY KEY,
    rejections INTEGER NOT NULL,
    unstored INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""

# Schema 1 -> 2, once the old table is renamed and the new ones created. Messages without a
# raw-log offset (sink refusals) keep their row's id as message id; the others get ids above.
_COPY_V1: Final = (
    "INSERT INTO messages (id, received_ns, topic, format, payload, source_offset, rejections, omitted)"
    " SELECT id, received_ns, topic, format, payload, NULL, 1, 0 FROM deadletters_v1"
    " WHERE source_offset IS NULL",
    "INSERT INTO messages (received_ns, topic, format, payload, source_offset, rejections, omitted)"
    " SELECT MIN(received_ns), topic, format, payload, source_offset, COUNT(*), 0 FROM deadletters_v1"
    " WHERE source_offset IS NOT NULL GROUP BY source_offset",
    "INSERT INTO deadletters (id, message_id, reason, detail, station_id, parameter, replayed_ns)"
    " SELECT o.id, IFNULL(m.id, o.id), o.reason, o.detail, o.station_id, o.parameter, o.replayed_ns"
    " FROM deadletters_v1 o LEFT JOIN messages m ON m.source_offset = o.source_offset ORDER BY o.id",
    "INSERT INTO reason_counts (reason, rejections, unstored)"
    " SELECT reason, COUNT(*), 0 FROM deadletters_v1 GROUP BY reason",
    "INSERT INTO meta (key, value)"
    " SELECT 'counted_through', MAX(source_offset) FROM deadletters_v1 WHERE source_offset IS NOT NULL",
    "DELETE FROM meta WHERE value IS NULL",
    "DROP TABLE deadletters_v1",
)


def _upgrade(db: sqlite3.Connection, path: Path, _version: int) -> None:
    """A file below schema 2: schema 1 moves to 2 if its `deadletters` table is there."""
    (old_table,) = db.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'deadletters'"
    ).fetchone()
    if old_table:
        _migrate_v1(db, path)


def _migrate_v1(db: sqlite3.Connection, path: Path) -> None:
    started = time.monotonic()
    before = path.stat().st_size
    with immediate_transaction(db):
        db.execute("ALTER TABLE deadletters RENAME TO deadletters_v1")
        # One statement at a time: executescript would commit the transaction first.
        for statement in filter(str.strip, _SCHEMA.split(";")):
            db.execute(statement)
        for statement in _COPY_V1:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    # Payloads stored once now: give the room back, and turn on incremental vacuuming (the
    # setting of an existing file changes only through a full VACUUM).
    db.execute("PRAGMA auto_vacuum = INCREMENTAL")
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (messages,) = db.execute("SELECT COUNT(*) FROM messages").fetchone()
    (rows,) = db.execute("SELECT COUNT(*) FROM deadletters").fetchone()
    log.info(
        "deadletter_store_migrated",
        schema=SCHEMA_VERSION,
        messages=messages,
        rows=rows,
        bytes_before=before,
        bytes_after=path.stat().st_size,
        seconds=round(time.monotonic() - started, 3),
    )


# Incremental auto-vacuum lets the retention give freed pages back to the disk.
SCHEMA: Final = Schema(
    name="dead-letter",
    version=SCHEMA_VERSION,
    ddl=_SCHEMA,
    upgrade=_upgrade,
    auto_vacuum="INCREMENTAL",
)


def bound_journal(db: sqlite3.Connection, max_bytes: int) -> int:
    """Keep the -wal file small beside the quota: checkpoint and truncate it at 1/16 of it.

    Between 64 pages and SQLite's default of 1000 (4 MiB); returns that size in bytes.
    """
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    pages = min(1000, max(64, max_bytes // 16 // int(page_size)))
    db.execute(f"PRAGMA wal_autocheckpoint = {pages}")
    db.execute(f"PRAGMA journal_size_limit = {pages * int(page_size)}")
    return pages * int(page_size)
