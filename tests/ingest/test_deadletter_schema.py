"""The dead-letter file: owner-only whatever the umask, and a schema-1 file moves to schema 2 intact."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import ingest.deadletter
from ingest.deadletter import DeadLetter, DeadLetterConfig, DeadLetterStore
from ingest.errors import RejectReason

# The schema of the first release: one row per rejection, each with its own copy of the payload.
SCHEMA_V1 = """
CREATE TABLE deadletters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_ns INTEGER NOT NULL, topic TEXT NOT NULL,
    payload BLOB NOT NULL, format TEXT, reason TEXT NOT NULL, detail TEXT NOT NULL, station_id TEXT,
    parameter TEXT, source_offset INTEGER, replayed_ns INTEGER
);
CREATE INDEX deadletters_reason ON deadletters (reason);
CREATE INDEX deadletters_received ON deadletters (received_ns);
CREATE UNIQUE INDEX deadletters_once
    ON deadletters (source_offset, reason, IFNULL(station_id, ''), IFNULL(parameter, ''), detail)
    WHERE source_offset IS NOT NULL;
"""
BIG = b'{"station_id": "x", "readings": {}}'.ljust(64 * 1024, b" ")


def v1_file(path: Path) -> None:
    """A schema-1 file: a 64 KB message with 50 rows (one replayed), another message, two sink refusals."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA_V1)
    insert = (
        "INSERT INTO deadletters (received_ns, topic, payload, format, reason, detail, station_id,"
        " parameter, source_offset, replayed_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    db.execute(insert, (5, "sink/influx", b"r1", "reading", "sink_rejected", "400", "a", "ph", None, None))
    for k in range(50):
        replayed = 99 if k == 0 else None
        row = (10, "t/big", BIG, "json", "unknown_station", "no x", f"x{k}", "ph", 7, replayed)
        db.execute(insert, row)
    db.execute(insert, (20, "t/bad", b"\xff", "json", "malformed", "not json", None, None, 8, None))
    db.execute(insert, (30, "sink/influx", b"r2", "reading", "sink_rejected", "400", "b", "do", None, None))
    db.close()


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common default umask, which would make new files world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_the_file_and_its_wal_and_shm_are_owner_only(tmp_path: Path, umask_022: None) -> None:
    """deadletter.db, -wal and -shm are 0600 under umask 022: they hold raw packets and their passwords."""
    path = tmp_path / "data" / "deadletter.db"
    store = DeadLetterStore(path)
    letter = DeadLetter(1, "hj212/X", b"##PW=123456", RejectReason.WRONG_PASSWORD, "wrong password")
    store.add_many([letter])
    for name in ("deadletter.db", "deadletter.db-wal", "deadletter.db-shm"):
        assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name
    store.close()


def test_a_schema_1_file_is_migrated_with_its_rows_ids_and_payloads(tmp_path: Path) -> None:
    """Old rows keep their ids, reasons, replay marks and payloads; each payload is stored once; counts agree."""
    path = tmp_path / "deadletter.db"
    v1_file(path)
    size_before = path.stat().st_size
    store = DeadLetterStore(path)
    rows = store.list(limit=100)
    assert [r.id for r in rows] == list(range(1, 54))
    assert [(r.reason, r.payload, r.source_offset) for r in (rows[0], rows[1], rows[51], rows[52])] == [
        ("sink_rejected", b"r1", None),
        ("unknown_station", BIG, 7),
        ("malformed", b"\xff", 8),
        ("sink_rejected", b"r2", None),
    ]
    assert rows[1].replayed_ns == 99
    assert rows[2].replayed_ns is None
    assert [r.station_id for r in rows[1:51]] == [f"x{k}" for k in range(50)]
    assert len({r.message_id for r in rows}) == 4
    assert store.counts_by_reason() == {"sink_rejected": 2, "unknown_station": 50, "malformed": 1}
    assert store.get(2) == rows[1]
    store.close()
    assert path.stat().st_size < size_before / 10
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (2,)
    assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental, so the retention shrinks it
    db.close()


def test_after_migration_old_offsets_are_not_counted_again_and_new_rows_follow(tmp_path: Path) -> None:
    """A batch re-processed after the upgrade adds nothing; the next rejection gets the next id."""
    path = tmp_path / "deadletter.db"
    v1_file(path)
    store = DeadLetterStore(path)
    repeat = DeadLetter(20, "t/bad", b"\xff", RejectReason.MALFORMED, "not json", "json", source_offset=8)
    store.add_many([repeat])
    assert store.counts_by_reason()["malformed"] == 1
    store.add_many(
        [DeadLetter(40, "t/bad", b"{", RejectReason.MALFORMED, "not json", "json", source_offset=9)]
    )
    assert store.counts_by_reason()["malformed"] == 2
    assert store.list(after_id=53)[0].id == 54
    store.close()
    # Opening it again migrates nothing more.
    assert DeadLetterStore(path).count() == 54


def test_the_docstring_example_validates() -> None:
    """The package docstring's `Example:` is a valid `deadletter:` section."""
    doc = ingest.deadletter.__doc__ or ""
    example = yaml.safe_load(doc.split("Example:\n", 1)[1])
    config = DeadLetterConfig.model_validate(example["deadletter"])
    assert config == DeadLetterConfig()
