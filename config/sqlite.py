"""SQLite opened one way for every database of ours, and the one transaction helper they share.

Four files, each with one owner of its schema (a `Schema` constant beside the code that writes it):

    readings.db      ingest.sinks.sqlite.SCHEMA           the SQLite sink; the dashboard reads it
    deadletter.db    ingest.deadletter.schema.SCHEMA      the dead-letter store
    alerts.db        alerts.store.SCHEMA                  the alert store and, in the same file, the
                                                          notification outbox (see alerts.store)

`open_database(path, schema, busy_timeout=...)` is the only way they are opened:
- the file is created owner-only first (`config.files.create_private_file`; SQLite gives the
  -wal and -shm files the database file's mode), its folder too;
- an autocommit connection (transactions are explicit: `immediate_transaction`) usable from any
  thread (each owner serialises its use with a lock or keeps it to one thread);
- `busy_timeout`: a writer waits this long for another connection's lock before failing;
- journal_mode=WAL, so readers see the last commit while a writer works, and synchronous=FULL:
  once a transaction commits it survives a power cut, because every one of these files is the
  only copy of what it holds once the log it came from moves on;
- the schema version (`PRAGMA user_version`): a file newer than this code is refused
  (`NewerSchemaError`) rather than misread; a file older than it, with tables, goes through the
  schema's `upgrade`; then the schema's DDL (CREATE ... IF NOT EXISTS, run at every open) creates
  what is missing, and the version is written if it changed.

`read_only=True` opens an existing file for reading (`mode=ro`, for the dashboard): no file is
created, nothing is written, and the version is checked all the same.

Usage:
    SCHEMA = Schema(name="readings", version=1, ddl="CREATE TABLE IF NOT EXISTS readings (...);")
    connection = open_database(path, SCHEMA, busy_timeout=5.0)
    with immediate_transaction(connection):
        connection.execute("INSERT INTO readings ...")
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from config.files import create_private_file

# Brings a file of an older version (the int) with tables up to the schema's version; it may run
# its own transactions and VACUUM (the connection is in autocommit mode). The path is for its logs.
Upgrade = Callable[[sqlite3.Connection, Path, int], None]


@dataclass(frozen=True, slots=True)
class Schema:
    """What one database file holds at one version, and how an older file gets there."""

    name: str  # what the file is, in errors: "alert database"
    version: int  # written to PRAGMA user_version
    ddl: str  # creates whatever is missing (CREATE ... IF NOT EXISTS only), run at every open
    upgrade: Upgrade | None = None
    # Set on a new file before its first table (it cannot change later without a VACUUM).
    auto_vacuum: Literal["FULL", "INCREMENTAL"] | None = None


class NewerSchemaError(sqlite3.DatabaseError):
    """The file was written by a newer ecowatch: its schema version is above the code's."""


def open_database(
    path: Path, schema: Schema, *, busy_timeout: float, read_only: bool = False
) -> sqlite3.Connection:
    """A connection to `path` at `schema`'s version (module docstring); `busy_timeout` in seconds."""
    if read_only:
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout, check_same_thread=False
        )
    else:
        create_private_file(path)
        connection = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    try:
        if read_only:
            _check_version(connection, path, schema)
        else:
            _prepare(connection, path, schema)
    except BaseException:
        connection.close()
        raise
    return connection


def _prepare(connection: sqlite3.Connection, path: Path, schema: Schema) -> None:
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables and schema.auto_vacuum is not None:
        connection.execute(f"PRAGMA auto_vacuum = {schema.auto_vacuum}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    version = _check_version(connection, path, schema)
    if tables and version < schema.version and schema.upgrade is not None:
        schema.upgrade(connection, path, version)
    connection.executescript(schema.ddl)
    # Only when it changed: writing it takes the write lock even when the value is the same.
    if _version(connection) != schema.version:
        connection.execute(f"PRAGMA user_version = {schema.version:d}")


def _check_version(connection: sqlite3.Connection, path: Path, schema: Schema) -> int:
    version = _version(connection)
    if version > schema.version:
        raise NewerSchemaError(
            f"{path}: {schema.name} schema version {version} is newer than this ecowatch's ({schema.version})"
        )
    return version


def _version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


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
