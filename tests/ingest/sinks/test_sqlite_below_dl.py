"""The SQLite sink's schema 2: below-detection marks, kinds of value as separate rows, the upgrade."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from config.sqlite import open_database
from ingest.model import DATA_KIND_TAG, DataFlag, DataKind, Reading
from ingest.sinks.sqlite import SCHEMA, SQLiteSink, SQLiteSinkConfig

T0 = 1_795_600_000_000_000_000
MINUTE = 60_000_000_000
TAGS = (("basin", "长江"), ("station_id", "st-1"))

# The schema 1 tables, as ecowatch created them before data kinds and detection limits.
SCHEMA_V1 = """
CREATE TABLE readings (
    station_id TEXT NOT NULL, parameter TEXT NOT NULL, time_ns INTEGER NOT NULL,
    measurement TEXT NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL, flag TEXT NOT NULL,
    tags TEXT NOT NULL, PRIMARY KEY (station_id, parameter, time_ns)
) WITHOUT ROWID;
CREATE INDEX readings_by_time ON readings (time_ns);
CREATE TABLE latest (
    station_id TEXT NOT NULL, parameter TEXT NOT NULL, time_ns INTEGER NOT NULL,
    measurement TEXT NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL, flag TEXT NOT NULL,
    tags TEXT NOT NULL, PRIMARY KEY (station_id, parameter)
) WITHOUT ROWID;
PRAGMA user_version = 1;
"""


def reading(
    value: float = 0.3,
    *,
    minute: int = 0,
    kind: str | None = None,
    below_dl: bool = False,
    flag: DataFlag = DataFlag.NORMAL,
    parameter: str = "nh3n",
) -> Reading:
    tags = tuple(sorted((*TAGS, (DATA_KIND_TAG, kind)))) if kind else TAGS
    return Reading(
        "st-1", "water_quality", parameter, value, "mg/L", T0 + minute * MINUTE, flag, tags, below_dl
    )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SQLiteSink]:
    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=tmp_path / "readings.db"))
    yield sink
    sink.close()


def test_a_reading_below_the_detection_limit_reads_back_marked(sink: SQLiteSink, tmp_path: Path) -> None:
    """below_dl is a column (1/0) and comes back on the reading, in the history and the overview."""
    readings = [reading(0.025, below_dl=True), reading(0.2, parameter="tp", flag=DataFlag.OVER_RANGE)]
    sink.write(readings)

    assert sorted(sink.query(), key=lambda r: r.parameter) == readings
    assert sink.latest_by_station()["st-1"]["nh3n"].below_dl
    with sqlite3.connect(tmp_path / "readings.db") as db:
        rows = db.execute(
            "SELECT parameter, value, flag, below_dl FROM readings ORDER BY parameter"
        ).fetchall()
    assert rows == [("nh3n", 0.025, "N", 1), ("tp", 0.2, "T", 0)]


def test_kinds_of_value_at_the_same_time_are_separate_rows(sink: SQLiteSink, tmp_path: Path) -> None:
    """A real-time value, an hourly and a daily mean and a lab result of one instant are four rows."""
    kinds = [None, "hourly", "daily", "lab"]
    sink.write([reading(0.3 + i / 10, kind=kind) for i, kind in enumerate(kinds)])
    sink.write([reading(0.3)])  # the real-time value replayed: still one row of its kind

    stored = sink.query()
    assert sorted((r.data_kind, r.value) for r in stored) == sorted(
        [(DataKind.REALTIME, 0.3), (DataKind.HOURLY, 0.4), (DataKind.DAILY, 0.5), (DataKind.LAB, 0.6)]
    )
    with sqlite3.connect(tmp_path / "readings.db") as db:
        assert sorted(db.execute("SELECT data_kind FROM readings")) == [
            ("daily",),
            ("hourly",),
            ("lab",),
            ("realtime",),
        ]
    assert [r.value for r in sink.query(data_kind=DataKind.HOURLY)] == [0.4]
    assert [r.value for r in sink.query(data_kind=DataKind.REALTIME)] == [0.3]


def test_a_rewrite_can_clear_the_mark(sink: SQLiteSink) -> None:
    """A point written below DL, then as a measured value (same key), reads back measured."""
    sink.write([reading(0.025, below_dl=True)])
    sink.write([reading(0.03)])

    assert [(r.value, r.below_dl) for r in sink.query()] == [(0.03, False)]
    assert not sink.latest_by_station()["st-1"]["nh3n"].below_dl


def _schema_1_file(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_V1)
        old = reading(0.3)
        db.execute(
            "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "st-1",
                "nh3n",
                old.time_ns,
                "water_quality",
                0.3,
                "mg/L",
                "N",
                '{"basin":"长江","station_id":"st-1"}',
            ),
        )
        db.execute(
            "INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "st-1",
                "nh3n",
                old.time_ns,
                "water_quality",
                0.3,
                "mg/L",
                "N",
                '{"basin":"长江","station_id":"st-1"}',
            ),
        )
    db.close()


def test_a_schema_1_file_is_upgraded_keeping_its_readings(tmp_path: Path) -> None:
    """The old rows become real-time measured readings; new kinds and marks are stored beside them."""
    path = tmp_path / "readings.db"
    _schema_1_file(path)

    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=path))
    try:
        with capture_logs() as logs:
            sink.write([reading(0.28, kind="hourly"), reading(0.025, minute=1, below_dl=True)])
        assert sorted((r.time_ns, r.data_kind, r.value, r.below_dl) for r in sink.query()) == [
            (T0, DataKind.HOURLY, 0.28, False),
            (T0, DataKind.REALTIME, 0.3, False),
            (T0 + MINUTE, DataKind.REALTIME, 0.025, True),
        ]
        assert sink.latest_by_station()["st-1"]["nh3n"] == reading(0.025, minute=1, below_dl=True)
    finally:
        sink.close()
    assert next(e for e in logs if e["event"] == "readings_store_upgraded")["rows"] == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA.version,)
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"readings", "latest"}
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall() == [
            ("readings_by_time",)
        ]
    db.close()


def test_the_upgrade_runs_once(tmp_path: Path) -> None:
    """Opening an upgraded file again changes nothing and logs no upgrade."""
    path = tmp_path / "readings.db"
    _schema_1_file(path)
    open_database(path, SCHEMA, busy_timeout=1.0).close()
    with capture_logs() as logs:
        connection = open_database(path, SCHEMA, busy_timeout=1.0)
    try:
        assert connection.execute("SELECT COUNT(*) FROM readings").fetchone() == (1,)
    finally:
        connection.close()
    assert not [e for e in logs if e["event"] == "readings_store_upgraded"]


def test_a_read_only_open_of_a_new_file_reads_the_new_columns(sink: SQLiteSink, tmp_path: Path) -> None:
    """The dashboard's read-only connection (same schema) sees below_dl and data_kind."""
    sink.write([replace(reading(0.025, below_dl=True), flag=DataFlag.COMMS)])
    connection = open_database(tmp_path / "readings.db", SCHEMA, busy_timeout=1.0, read_only=True)
    try:
        assert connection.execute("SELECT data_kind, below_dl, flag FROM readings").fetchall() == [
            ("realtime", 1, "B")
        ]
    finally:
        connection.close()
