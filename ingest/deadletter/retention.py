"""The retention: delete messages past their age in small chunks, and give the room back to the disk."""

from __future__ import annotations

import sqlite3
import threading
from typing import Final

import orjson

from config.sqlite import immediate_transaction

# Messages deleted per transaction (each with at most `max_rows_per_message` rows): an `add_many`
# waiting for the lock waits for one chunk, not for the whole retention.
_DELETE_CHUNK: Final = 100
# Pages given back per incremental-vacuum transaction, for the same reason (8 MiB of 4 KiB pages).
_VACUUM_PAGES: Final = 2048


def delete_before(
    db: sqlite3.Connection, lock: threading.Lock, before_ns: int, stop: threading.Event
) -> tuple[int, int]:
    """Delete the messages received before `before_ns` with their rows; (messages, rows) deleted."""
    messages = rows = 0
    while True:
        with lock, immediate_transaction(db):
            ids = [
                i
                for (i,) in db.execute(
                    "SELECT id FROM messages WHERE received_ns < ? ORDER BY received_ns LIMIT ?",
                    (before_ns, _DELETE_CHUNK),
                )
            ]
            if ids:
                chunk = orjson.dumps(ids).decode()
                rows += db.execute(
                    "DELETE FROM deadletters WHERE message_id IN (SELECT value FROM json_each(?))", (chunk,)
                ).rowcount
                db.execute("DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))", (chunk,))
        messages += len(ids)
        if len(ids) < _DELETE_CHUNK or stop.is_set():
            return messages, rows


def compact(db: sqlite3.Connection, lock: threading.Lock, stop: threading.Event) -> None:
    """Give free pages back to the disk (incremental vacuum), then truncate the -wal file."""
    before = None
    while not stop.is_set():
        with lock:
            (free,) = db.execute("PRAGMA freelist_count").fetchone()
            if not free or free == before:  # nothing to give, or a file without auto-vacuum
                break
            before = free
            # executescript steps the pragma to its end; execute would give back one page.
            db.executescript(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})")
    with lock:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
