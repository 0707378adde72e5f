"""The SQLite sink's schema 3: the time-corrected mark as a column, and files of schema 1 and 2 upgraded."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from config.sqlite import open_database
from ingest.app.query import Point, SQLiteQuery
from ingest.model import DataKind
from ingest.sinks.sqlite import SCHEMA, SQLiteSink, SQLiteSinkConfig
from tests.ingest.sinks.test_sqlite_below_dl import MINUTE, T0, _schema_1_file, reading

# The schema 2 tables, as ecowatch created them before time-corrected marks.
SCHEMA_V2 = """
CREATE TABLE readings (
    station_id TEXT NOT NULL, parameter TEXT NOT NULL, data_kind TEXT NOT NULL DEFAULT 'realtime',
    time_ns INTEGER NOT NULL, measurement TEXT NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL,
    flag TEXT NOT NULL, below_dl INTEGER NOT NULL DEFAULT 0, tags TEXT NOT NULL,
    PRIMARY KEY (station_id, parameter, data_kind, time_ns)
) WITHOUT ROWID;
CREATE INDEX readings_by_time ON readings (time_ns);
CREATE TABLE latest (
    station_id TEXT NOT NULL, parameter TEXT NOT NULL, time_ns INTEGER NOT NULL,
    measurement TEXT NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL, flag TEXT NOT NULL,
    tags TEXT NOT NULL, data_kind TEXT NOT NULL DEFAULT 'realtime', below_dl INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (station_id, parameter)
) WITHOUT ROWID;
PRAGMA user_version = 2;
"""
TAGS_JSON = '{"basin":"长江","station_id":"st-1"}'


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SQLiteSink]:
    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=tmp_path / "readings.db"))
    yield sink
    sink.close()


def _schema_2_file(path: Path) -> None:
    """A schema 2 file holding one real-time reading (0.3 at T0) and one hourly one below DL."""
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_V2)
        columns = "station_id, parameter, data_kind, time_ns, measurement, value, unit, flag, below_dl, tags"
        for kind, value, below, tags in (
            ("realtime", 0.3, 0, TAGS_JSON),
            ("hourly", 0.025, 1, '{"basin":"长江","data_kind":"hourly","station_id":"st-1"}'),
        ):
            db.execute(
                f"INSERT INTO readings ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ("st-1", "nh3n", kind, T0, "water_quality", value, "mg/L", "N", below, tags),
            )
        db.execute(
            "INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("st-1", "nh3n", T0, "water_quality", 0.3, "mg/L", "N", TAGS_JSON, "realtime", 0),
        )
    db.close()


def test_a_reading_at_a_corrected_time_reads_back_marked(sink: SQLiteSink, tmp_path: Path) -> None:
    """time_corrected is a column (1/0) and comes back on the reading, in the history and the overview."""
    readings = [
        replace(reading(7.1, parameter="ph"), time_corrected=True),
        replace(reading(0.025, below_dl=True), time_corrected=True),
        reading(0.2, parameter="tp"),
    ]
    sink.write(readings)

    assert sorted(sink.query(), key=lambda r: r.parameter) == sorted(readings, key=lambda r: r.parameter)
    latest = sink.latest_by_station()["st-1"]
    assert (latest["ph"].time_corrected, latest["nh3n"].time_corrected, latest["tp"].time_corrected) == (
        True,
        True,
        False,
    )
    with sqlite3.connect(tmp_path / "readings.db") as db:
        rows = db.execute(
            "SELECT parameter, below_dl, time_corrected FROM readings ORDER BY parameter"
        ).fetchall()
    db.close()
    assert rows == [("nh3n", 1, 1), ("ph", 0, 1), ("tp", 0, 0)]


def test_a_rewrite_sets_the_mark_as_the_new_reading_has_it(sink: SQLiteSink) -> None:
    """The same point written corrected, then as sent (a replay after a fix), reads back as the last write."""
    sink.write([replace(reading(0.3), time_corrected=True)])
    sink.write([reading(0.3)])

    assert [r.time_corrected for r in sink.query()] == [False]
    assert not sink.latest_by_station()["st-1"]["nh3n"].time_corrected


def test_a_schema_2_file_is_upgraded_in_place_keeping_its_readings(tmp_path: Path) -> None:
    """The old rows (both kinds, the below-DL mark kept) read back uncorrected; new marks are stored beside them."""
    path = tmp_path / "readings.db"
    _schema_2_file(path)

    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=path))
    try:
        with capture_logs() as logs:
            sink.write([replace(reading(0.31, minute=1), time_corrected=True)])
        assert sorted(
            (r.time_ns, r.data_kind, r.value, r.below_dl, r.time_corrected) for r in sink.query()
        ) == [
            (T0, DataKind.HOURLY, 0.025, True, False),
            (T0, DataKind.REALTIME, 0.3, False, False),
            (T0 + MINUTE, DataKind.REALTIME, 0.31, False, True),
        ]
        assert sink.latest_by_station()["st-1"]["nh3n"].time_corrected
    finally:
        sink.close()
    upgraded = next(e for e in logs if e["event"] == "readings_store_upgraded")
    assert (upgraded["from_schema"], upgraded["schema"], upgraded["rows"]) == (2, 3, 2)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA.version,) == (3,)
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert tables == {"readings", "latest"}


def test_a_schema_1_file_is_upgraded_with_the_column_in_both_tables(tmp_path: Path) -> None:
    """A schema 1 file goes straight to 3: its readings rewritten with the column, `latest` given it."""
    path = tmp_path / "readings.db"
    _schema_1_file(path)

    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=path))
    try:
        sink.write([replace(reading(0.31, minute=1, kind="hourly"), time_corrected=True)])
        assert sorted((r.data_kind, r.value, r.time_corrected) for r in sink.query()) == [
            (DataKind.HOURLY, 0.31, True),
            (DataKind.REALTIME, 0.3, False),
        ]
        assert sink.latest_by_station()["st-1"]["nh3n"].time_corrected
    finally:
        sink.close()


def test_charts_read_a_schema_2_file_the_sink_has_not_upgraded_yet(tmp_path: Path) -> None:
    """The dashboard's read-only query opens an older file (it selects no time_corrected column)."""
    path = tmp_path / "readings.db"
    _schema_2_file(path)
    since = datetime.fromtimestamp(T0 / 1e9 - 60, tz=UTC)
    until = datetime.fromtimestamp(T0 / 1e9 + 60, tz=UTC)

    assert SQLiteQuery(path).series("st-1", "nh3n", since, until, 10) == [Point(T0, 0.3, "N", False)]
    connection = open_database(path, SCHEMA, busy_timeout=1.0, read_only=True)
    try:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)  # read, never upgraded
    finally:
        connection.close()
