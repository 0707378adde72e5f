"""SQLite plumbing the stores share (alert store, outbox, embedded readings sink)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def immediate_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """One atomic unit on an autocommit connection: all of it commits, or none of it.

    BEGIN IMMEDIATE takes the write lock up front, so two writers wait for each other (up to
    the connection's busy timeout) instead of one failing at its first write.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
