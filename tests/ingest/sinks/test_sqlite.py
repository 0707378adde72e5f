"""The SQLite sink: idempotent upserts, durability settings, the read API used by the dashboard."""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.errors import SinkError
from ingest.model import DataFlag, Reading
from ingest.sinks.sqlite import SQLiteSink, SQLiteSinkConfig

T0 = 1_795_600_000_000_000_000
MINUTE = 60_000_000_000


def reading(
    station_id: str = "cq-cj-cuntan",
    parameter: str = "ph",
    value: float = 7.6,
    minute: int = 0,
    flag: DataFlag = DataFlag.NORMAL,
) -> Reading:
    return Reading(
        station_id=station_id,
        measurement="hydrology" if parameter == "level" else "water_quality",
        parameter=parameter,
        value=value,
        unit={"ph": "", "do": "mg/L", "level": "m"}[parameter],
        time_ns=T0 + minute * MINUTE,
        flag=flag,
        tags=(("basin", "长江"), ("district", "渝中区"), ("station_id", station_id)),
    )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SQLiteSink]:
    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=tmp_path / "var" / "readings.db"))
    yield sink
    sink.close()


def test_written_readings_read_back_equal(sink: SQLiteSink) -> None:
    """Every field of a reading, tags and flag included, survives a write and a query."""
    readings = [reading(), reading(parameter="do", value=8.1, flag=DataFlag.CALIBRATION)]

    sink.write(readings)

    assert sorted(sink.query(), key=lambda r: r.parameter) == sorted(readings, key=lambda r: r.parameter)


def test_replaying_a_batch_stores_each_reading_once(sink: SQLiteSink) -> None:
    """Writing the same batch again (a WAL replay) leaves the count unchanged."""
    batch = [reading(minute=m) for m in range(10)] + [reading(parameter="do", minute=m) for m in range(10)]

    sink.write(batch)
    sink.write(batch)

    assert sink.count() == 20


def test_a_replayed_key_overwrites_value_flag_and_tags(sink: SQLiteSink) -> None:
    """(station, parameter, time) is the key: a later write of it replaces the stored reading."""
    sink.write([reading(value=7.0)])
    corrected = reading(value=7.2, flag=DataFlag.MANUAL)

    sink.write([corrected])

    assert sink.query() == [corrected]


def test_query_filters_by_station_parameter_and_time(sink: SQLiteSink) -> None:
    """Filters combine; since is inclusive, until exclusive; results come oldest first."""
    sink.write(
        [reading(minute=m) for m in range(5)]
        + [reading(parameter="do", minute=m) for m in range(5)]
        + [reading(station_id="cq-jlj-beiwenquan", minute=m) for m in range(5)]
    )

    found = sink.query("cq-cj-cuntan", "ph", since_ns=T0 + MINUTE, until_ns=T0 + 3 * MINUTE)

    assert [(r.station_id, r.parameter, r.time_ns) for r in found] == [
        ("cq-cj-cuntan", "ph", T0 + MINUTE),
        ("cq-cj-cuntan", "ph", T0 + 2 * MINUTE),
    ]
    assert {r.parameter for r in sink.query(station_id="cq-cj-cuntan")} == {"ph", "do"}
    assert {r.station_id for r in sink.query(parameter="ph")} == {"cq-cj-cuntan", "cq-jlj-beiwenquan"}


def test_query_limit_keeps_the_newest(sink: SQLiteSink) -> None:
    """With more matches than the limit, the newest ones are returned, still oldest first."""
    sink.write([reading(minute=m) for m in range(10)])

    found = sink.query(limit=3)

    assert [r.time_ns for r in found] == [T0 + 7 * MINUTE, T0 + 8 * MINUTE, T0 + 9 * MINUTE]


def test_query_refuses_a_limit_below_one(sink: SQLiteSink) -> None:
    """A limit of zero is a caller's mistake, not an empty answer."""
    with pytest.raises(ValueError, match="limit"):
        sink.query(limit=0)


def test_latest_by_station_holds_the_newest_reading_of_each_parameter(sink: SQLiteSink) -> None:
    """The overview holds the newest reading per station and parameter; an old replay does not regress it."""
    sink.write([reading(minute=m, value=7.0 + m / 10) for m in range(3)])
    sink.write(
        [reading(parameter="level", minute=1, value=3.5), reading(station_id="cq-jlj-beiwenquan", minute=0)]
    )
    sink.write([reading(minute=0, value=6.5)])  # a replay of an old minute

    latest = sink.latest_by_station()

    assert {station: sorted(by_parameter) for station, by_parameter in latest.items()} == {
        "cq-cj-cuntan": ["level", "ph"],
        "cq-jlj-beiwenquan": ["ph"],
    }
    assert latest["cq-cj-cuntan"]["ph"] == reading(minute=2, value=7.2)
    assert latest["cq-cj-cuntan"]["level"].value == 3.5


def test_a_rewrite_of_the_latest_minute_updates_the_overview(sink: SQLiteSink) -> None:
    """A corrected value at the newest time replaces the overview's reading too."""
    sink.write([reading(value=7.0)])
    sink.write([reading(value=7.4)])

    assert sink.latest_by_station()["cq-cj-cuntan"]["ph"].value == 7.4


def test_file_is_in_wal_mode(sink: SQLiteSink, tmp_path: Path) -> None:
    """The file uses WAL journaling (readers beside the writer); the folder is created on first use."""
    sink.write([reading()])

    with sqlite3.connect(tmp_path / "var" / "readings.db") as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert other.execute("SELECT COUNT(*) FROM readings").fetchone() == (1,)


def test_reads_from_other_threads_see_committed_writes(sink: SQLiteSink) -> None:
    """The HTTP thread can read while the delivery thread writes: connections are not thread-bound."""
    sink.write([reading(minute=m) for m in range(100)])
    counts: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                counts.append(sink.count())
                sink.query(limit=10)
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    for batch in range(5):
        sink.write([reading(parameter="do", minute=batch * 10 + m) for m in range(10)])
    for thread in readers:
        thread.join(timeout=10)

    assert errors == []
    assert all(100 <= count <= 150 for count in counts)
    assert sink.count() == 150


def test_check_fails_on_an_unusable_path(tmp_path: Path) -> None:
    """A path whose folder cannot exist fails check() with a retryable storage error."""
    (tmp_path / "file").write_text("not a folder")
    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=tmp_path / "file" / "readings.db"))

    with pytest.raises(SinkError) as caught:
        sink.check()

    assert (caught.value.reason, caught.value.retryable) == ("storage", True)


def test_check_passes_and_creates_the_schema(sink: SQLiteSink) -> None:
    """check() opens the file and finds the table, so an empty sink reads as empty."""
    sink.check()

    assert sink.count() == 0
    assert sink.latest_by_station() == {}


def test_a_value_the_table_cannot_hold_is_rejected(sink: SQLiteSink) -> None:
    """NaN (stored by SQLite as NULL) breaks NOT NULL: a non-retryable rejection, nothing half-written."""
    with pytest.raises(SinkError) as caught:
        sink.write([reading(minute=1), reading(value=math.nan)])

    assert (caught.value.reason, caught.value.retryable) == ("rejected", False)
    assert sink.count() == 0


def test_the_sink_reopens_after_close(sink: SQLiteSink) -> None:
    """close() releases the file; the next call opens it again with its data."""
    sink.write([reading()])
    sink.close()

    sink.write([reading(minute=1)])

    assert sink.count() == 2


def test_empty_batch_touches_nothing(tmp_path: Path) -> None:
    """Writing no readings does not even create the file."""
    path = tmp_path / "readings.db"
    SQLiteSink(SQLiteSinkConfig(name="local", path=path)).write([])

    assert not path.exists()
