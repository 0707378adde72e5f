"""Every database opened one way (config.sqlite): private file, WAL, FULL, busy timeout, schema version."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from alerts.outbox import schema as outbox_schema
from alerts.store import SCHEMA as ALERTS_SCHEMA
from alerts.store import AlertStore
from config.sqlite import NewerSchemaError, Schema, open_database
from ingest.deadletter.schema import SCHEMA as DEADLETTER_SCHEMA
from ingest.sinks.sqlite import SCHEMA as READINGS_SCHEMA

SCHEMA = Schema(
    name="test", version=2, ddl="CREATE TABLE IF NOT EXISTS things (id INTEGER PRIMARY KEY, name TEXT);"
)


def _pragma(connection: sqlite3.Connection, name: str) -> object:
    return connection.execute(f"PRAGMA {name}").fetchone()[0]


def test_a_new_file_is_private_durable_and_at_the_schema_version(tmp_path: Path) -> None:
    """The file and its folder are created owner-only; WAL, synchronous=FULL, the busy timeout and the version are set."""
    path = tmp_path / "data" / "test.db"

    connection = open_database(path, SCHEMA, busy_timeout=2.5)
    connection.execute("INSERT INTO things (name) VALUES ('a')")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(f"{path}-wal").stat().st_mode) == 0o600
    assert _pragma(connection, "journal_mode") == "wal"
    assert _pragma(connection, "synchronous") == 2  # FULL
    assert _pragma(connection, "busy_timeout") == 2500
    assert _pragma(connection, "user_version") == 2
    assert connection.isolation_level is None  # autocommit: transactions are explicit
    connection.close()


def test_a_file_of_a_newer_version_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    """A file written by a newer ecowatch is neither read nor changed (no DDL, no version written)."""
    path = tmp_path / "test.db"
    with sqlite3.connect(path) as newer:
        newer.execute("PRAGMA user_version = 3")
    newer.close()

    with pytest.raises(NewerSchemaError, match="test schema version 3 is newer"):
        open_database(path, SCHEMA, busy_timeout=1.0)
    with pytest.raises(NewerSchemaError):
        open_database(path, SCHEMA, busy_timeout=1.0, read_only=True)

    with sqlite3.connect(path) as check:
        assert _pragma(check, "user_version") == 3
        assert check.execute("SELECT name FROM sqlite_master WHERE name = 'things'").fetchall() == []
    check.close()


def test_an_older_file_with_tables_is_upgraded_then_completed(tmp_path: Path) -> None:
    """The upgrade sees the old version; the DDL then adds what is missing and the new version is written."""
    path = tmp_path / "test.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE legacy (x)")
        old.execute("PRAGMA user_version = 1")
    old.close()
    seen: list[tuple[Path, int]] = []

    def upgrade(connection: sqlite3.Connection, at: Path, version: int) -> None:
        seen.append((at, version))
        connection.execute("ALTER TABLE legacy RENAME TO legacy_v1")

    connection = open_database(
        path, Schema(name="test", version=2, ddl=SCHEMA.ddl, upgrade=upgrade), busy_timeout=1.0
    )

    assert seen == [(path, 1)]
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"legacy_v1", "things"}
    assert _pragma(connection, "user_version") == 2
    connection.close()


def test_a_new_file_is_not_upgraded_but_gets_its_auto_vacuum(tmp_path: Path) -> None:
    """A file without tables is created at the current version; auto_vacuum is set before its first table."""
    calls: list[int] = []
    schema = Schema(
        name="test",
        version=2,
        ddl=SCHEMA.ddl,
        upgrade=lambda _c, _p, version: calls.append(version),
        auto_vacuum="INCREMENTAL",
    )

    connection = open_database(tmp_path / "test.db", schema, busy_timeout=1.0)

    assert calls == []
    assert _pragma(connection, "auto_vacuum") == 2  # incremental
    connection.close()


def test_opening_a_current_file_writes_nothing(tmp_path: Path) -> None:
    """Re-opening a file at the current version takes no write lock, so it works while another writes."""
    path = tmp_path / "test.db"
    writer = open_database(path, SCHEMA, busy_timeout=1.0)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO things (name) VALUES ('held')")

    other = open_database(path, SCHEMA, busy_timeout=0.0)

    assert other.execute("SELECT COUNT(*) FROM things").fetchone() == (0,)
    writer.execute("COMMIT")
    other.close()
    writer.close()


def test_read_only_creates_nothing_and_cannot_write(tmp_path: Path) -> None:
    """The dashboard's opener: a missing file stays missing; an existing one is read, never written."""
    path = tmp_path / "test.db"
    with pytest.raises(sqlite3.OperationalError):
        open_database(path, SCHEMA, busy_timeout=1.0, read_only=True)
    assert not path.exists()
    open_database(path, SCHEMA, busy_timeout=1.0).close()

    reader = open_database(path, SCHEMA, busy_timeout=1.0, read_only=True)

    assert reader.execute("SELECT COUNT(*) FROM things").fetchone() == (0,)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("INSERT INTO things (name) VALUES ('no')")
    reader.close()


def test_each_database_has_one_schema_with_its_own_name_and_version() -> None:
    """The three files' schemas are distinct constants, each named for its file in errors."""
    schemas = {s.name: s.version for s in (ALERTS_SCHEMA, DEADLETTER_SCHEMA, READINGS_SCHEMA)}

    assert schemas == {"alert database": 3, "dead-letter": 2, "readings": 3}


def test_the_outbox_opening_alerts_db_first_creates_the_stores_schema(tmp_path: Path) -> None:
    """alerts.db has one schema owner: the outbox opens it with the store's schema, so either side may come first."""
    path = tmp_path / "alerts.db"

    connection = outbox_schema.connect(path)
    outbox_schema.create(connection)

    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alerts", "history", "notification_events", "deliveries", "rate_slots"} <= tables
    assert _pragma(connection, "user_version") == ALERTS_SCHEMA.version
    connection.close()
    AlertStore(path).close()  # and the store then opens it as its own


def test_the_outbox_refuses_an_alert_database_of_a_newer_version(tmp_path: Path) -> None:
    """The version of alerts.db is checked in one place, so the outbox refuses a newer file as the store does."""
    path = tmp_path / "alerts.db"
    AlertStore(path).close()
    with sqlite3.connect(path) as newer:
        newer.execute(f"PRAGMA user_version = {ALERTS_SCHEMA.version + 1}")
    newer.close()

    with pytest.raises(NewerSchemaError, match="alert database"):
        outbox_schema.connect(path)
    with pytest.raises(NewerSchemaError, match="alert database"):
        AlertStore(path)
