"""The chart query interface: SQLite and InfluxDB 1.x against real data, Flux by its request.

Each store answers one kind of value (real-time unless asked) and marks values below the
detection limit (`Point.below_dl`), raw and in buckets.

There is no InfluxDB 2 server on this machine (and VictoriaMetrics does not speak Flux), so the
Flux query is tested by what influxdb-client sends to a stub `/api/v2/query` on loopback: the
query text is fixed, every value travels as a bound `option` in the request's AST, and the
stub's annotated-CSV answer is read back into points. Whether InfluxDB 2 evaluates the Flux as
intended is not tested here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.app.query import (
    FLUX_BUCKETS,
    FLUX_RAW,
    InfluxDB1Query,
    InfluxDBQuery,
    Point,
    QueryError,
    SQLiteQuery,
    bucket_ns,
    make_query,
)
from ingest.model import DATA_KIND_TAG, DataFlag, DataKind, Reading
from ingest.sinks.influxdb import InfluxDBSinkConfig
from ingest.sinks.influxdb1 import InfluxDB1Sink, InfluxDB1SinkConfig
from ingest.sinks.sqlite import SQLiteSink, SQLiteSinkConfig
from tests.dashboard.support import T0, ns, reading
from tests.servers import InfluxDB1Server

HOSTILE_ID = 'st-1" or r.station_id != "'
SINCE = T0 - timedelta(hours=2)


def minutes(*values: float, station_id: str = "st-1", flagged: tuple[int, ...] = ()) -> list[Any]:
    """One nh3n reading a minute from SINCE, flag M at the given indexes."""
    return [
        reading(
            station_id,
            "nh3n",
            v,
            SINCE + timedelta(minutes=i),
            DataFlag.MAINTENANCE if i in flagged else DataFlag.NORMAL,
        )
        for i, v in enumerate(values)
    ]


def expected_buckets(
    values: list[float], flagged: tuple[int, ...], width_ns: int, below: tuple[int, ...] = ()
) -> list[tuple[int, float, str, bool]]:
    groups: dict[int, list[tuple[float, bool, bool]]] = {}
    for i, v in enumerate(values):
        at = ns(SINCE + timedelta(minutes=i))
        groups.setdefault(at // width_ns * width_ns, []).append((v, i in flagged, i in below))
    return [
        (
            start,
            pytest.approx(sum(v for v, _, _ in g) / len(g)),  # type: ignore[misc]
            "M" if any(f for _, f, _ in g) else "N",
            all(b for _, _, b in g),
        )
        for start, g in sorted(groups.items())
    ]


def raw_points(count: int) -> list[tuple[int, float, str, bool]]:
    """The first `count` minutes of VALUES as raw points: flag M at 7, below the DL at 20-29."""
    return [
        (ns(SINCE + timedelta(minutes=i)), VALUES[i], "M" if i == 7 else "N", i in BELOW_DL)
        for i in range(count)
    ]


def other_kinds() -> list[Reading]:
    """Hourly means and lab results of st-1 at the same minutes: other series, never in the real-time one."""
    out = []
    for kind in ("hourly", "lab"):
        tags = ((DATA_KIND_TAG, kind), ("station_id", "st-1"))
        out += [replace(r, value=r.value + 100, tags=tags) for r in minutes(*VALUES[:10])]
    return out


VALUES = [round(0.1 * i, 3) for i in range(60)]
FLAGGED = (7,)
# Minutes 20-29: results below the detection limit (the value being the limit), a whole bucket of 10.
BELOW_DL = tuple(range(20, 30))


def stored_minutes() -> list[Reading]:
    return [replace(r, below_dl=i in BELOW_DL) for i, r in enumerate(minutes(*VALUES, flagged=FLAGGED))]


# --- SQLite ------------------------------------------------------------------------------------
@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "readings.db"
    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=path))
    sink.write(stored_minutes() + minutes(9.0, 9.0, station_id="st-2") + other_kinds())
    sink.write([reading("st-1", "do", 8.0, SINCE)])
    yield path
    sink.close()


def test_sqlite_answers_raw_points_oldest_first(sqlite_store: Path) -> None:
    """Within max_points: every real-time reading of the station and parameter in [since, until),
    with its flag and below-DL mark."""
    query = SQLiteQuery(sqlite_store)
    points = query.series("st-1", "nh3n", SINCE, SINCE + timedelta(minutes=30), 100)
    assert points == raw_points(30)
    assert points[25] == Point(ns(SINCE + timedelta(minutes=25)), VALUES[25], "N", below_dl=True)


def test_sqlite_buckets_past_max_points(sqlite_store: Path) -> None:
    """Past max_points: epoch-aligned bucket means, flagged when any value in the bucket was, below
    the DL when all were."""
    until = SINCE + timedelta(hours=1)
    points = SQLiteQuery(sqlite_store).series("st-1", "nh3n", SINCE, until, 7)
    assert len(points) <= 7
    assert points == expected_buckets(VALUES, FLAGGED, bucket_ns(SINCE, until, 7), BELOW_DL)
    assert any(p.below_dl for p in points)


def test_sqlite_answers_one_kind_of_value(sqlite_store: Path) -> None:
    """The hourly and lab series are asked for by kind; real-time is the default."""
    query = SQLiteQuery(sqlite_store)
    until = SINCE + timedelta(minutes=10)
    hourly = query.series("st-1", "nh3n", SINCE, until, 100, kind=DataKind.HOURLY)
    assert [p.value for p in hourly] == [v + 100 for v in VALUES[:10]]
    assert [p.value for p in query.series("st-1", "nh3n", SINCE, until, 100, kind=DataKind.LAB)] == [
        v + 100 for v in VALUES[:10]
    ]
    assert query.series("st-1", "nh3n", SINCE, until, 100, kind=DataKind.DAILY) == []


def test_sqlite_binds_the_station_id(sqlite_store: Path) -> None:
    """A station id with SQL in it matches nothing."""
    assert SQLiteQuery(sqlite_store).series("st-1' OR '1'='1", "nh3n", SINCE, T0, 100) == []


def test_sqlite_without_a_store_yet_answers_nothing(tmp_path: Path) -> None:
    """Before the sink's first batch there is no file, or no table: no points, no error."""
    assert SQLiteQuery(tmp_path / "missing.db").series("st-1", "nh3n", SINCE, T0, 10) == []
    (tmp_path / "empty.db").write_bytes(b"")  # an empty file is an empty SQLite database
    assert SQLiteQuery(tmp_path / "empty.db").series("st-1", "nh3n", SINCE, T0, 10) == []


def test_sqlite_opens_the_store_read_only(sqlite_store: Path) -> None:
    """The query's connection cannot write: the store is unchanged after queries."""
    before = sqlite_store.read_bytes()
    SQLiteQuery(sqlite_store).series("st-1", "nh3n", SINCE, T0, 5)
    assert sqlite_store.read_bytes() == before


def test_bucket_width_fits_max_points() -> None:
    """Aligned buckets of the chosen width never exceed max_points over the period."""
    for hours, max_points in ((1, 10), (24, 1000), (720, 1000), (720, 10), (5, 7)):
        since = datetime(2026, 3, 1, 0, 0, 7, tzinfo=T0.tzinfo)
        until = since + timedelta(hours=hours)
        width = bucket_ns(since, until, max_points)
        buckets = (ns(until) - 1) // width - ns(since) // width + 1
        assert buckets <= max_points
        assert width % 1_000_000_000 == 0


# --- InfluxDB 1.x ------------------------------------------------------------------------------
@pytest.fixture
def influx1_config(influxdb1: InfluxDB1Server) -> InfluxDB1SinkConfig:
    influxdb1.create_database("water")
    config = InfluxDB1SinkConfig(name="influx1", url=influxdb1.url, database="water")
    sink = InfluxDB1Sink(config)
    sink.write(stored_minutes() + minutes(9.0, 9.0, station_id="st-2") + other_kinds())
    sink.close()
    return config


@pytest.mark.integration
def test_influxdb1_raw_buckets_and_bound_station(influx1_config: InfluxDB1SinkConfig) -> None:
    """InfluxQL with bound parameters: raw points, the same buckets as SQLite, and no injection."""
    query = InfluxDB1Query(influx1_config)
    try:
        raw = query.series("st-1", "nh3n", SINCE, SINCE + timedelta(minutes=30), 100)
        assert raw == raw_points(30)
        until = SINCE + timedelta(hours=1)
        assert query.series("st-1", "nh3n", SINCE, until, 7) == expected_buckets(
            VALUES, FLAGGED, bucket_ns(SINCE, until, 7), BELOW_DL
        )
        hourly = query.series("st-1", "nh3n", SINCE, SINCE + timedelta(minutes=10), 100, kind=DataKind.HOURLY)
        assert [p.value for p in hourly] == [v + 100 for v in VALUES[:10]]
        assert query.series("st-1", "nh3n", SINCE, T0, 100, kind=DataKind.DAILY) == []
        assert query.series("st-1", "nh3n", SINCE, T0, 100, kind=DataKind.LAB)[0].value == 100.0
        with pytest.raises(ValueError, match="is not a valid DataKind"):
            query.series("st-1", "nh3n", SINCE, T0, 100, kind="hourly' OR data_kind = 'lab")  # type: ignore[arg-type]
        for hostile in ("st-1' OR station_id = 'st-2", "st-1' OR '1'='1", HOSTILE_ID, "$station_id"):
            assert query.series(hostile, "nh3n", SINCE, T0, 100) == []
        assert [p[1] for p in query.series("st-2", "nh3n", SINCE, T0, 100)] == [9.0, 9.0]
    finally:
        query.close()


@pytest.mark.integration
def test_influxdb1_errors_are_query_errors(influx1_config: InfluxDB1SinkConfig, closed_port: int) -> None:
    """An unknown database and a closed port raise QueryError naming the store."""
    missing = InfluxDB1Query(influx1_config.model_copy(update={"database": "nope"}))
    with pytest.raises(QueryError, match="influxdb1: database not found"):
        missing.series("st-1", "nh3n", SINCE, T0, 10)
    down = InfluxDB1Query(influx1_config.model_copy(update={"url": f"http://127.0.0.1:{closed_port}"}))
    with pytest.raises(QueryError, match="influxdb1"):
        down.series("st-1", "nh3n", SINCE, T0, 10)


# --- InfluxDB 2 (Flux) -------------------------------------------------------------------------
class FluxStub:
    """A loopback `/api/v2/query` that records requests and answers canned annotated CSV."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                stub.requests.append(
                    {
                        "path": self.path,
                        "auth": self.headers.get("Authorization"),
                        "body": orjson.loads(self.rfile.read(length)),
                    }
                )
                body = stub.answers.pop(0).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/csv; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def raw_csv(rows: list[tuple[str, float, str]], below_dl: tuple[int, ...] = ()) -> str:
    """A pivoted raw answer; rows at the `below_dl` indexes carry nh3n_dl=1, the others none."""
    lines = [
        "#datatype,string,long,dateTime:RFC3339,double,string,long",
        "#group,false,false,false,false,false,false",
        "#default,_result,,,,,",
        ",result,table,_time,nh3n,nh3n_flag,nh3n_dl",
    ]
    lines += [f",,0,{t},{v},{f},{1 if i in below_dl else ''}" for i, (t, v, f) in enumerate(rows)]
    return "\r\n".join(lines) + "\r\n\r\n"


def bucket_csv(
    values: list[tuple[str, float]],
    flags: list[tuple[str, str]],
    counts: list[tuple[str, int]] = (),  # type: ignore[assignment]
    dls: list[tuple[str, int]] = (),  # type: ignore[assignment]
) -> str:
    fields = {"values": "nh3n", "counts": "nh3n", "dls": "nh3n_dl", "flags": "nh3n_flag"}

    def table(result: str, datatype: str, rows: list[tuple[str, Any]]) -> list[str]:
        return [
            f"#datatype,string,long,dateTime:RFC3339,{datatype},string,string",
            "#group,false,false,false,false,true,true",
            f"#default,{result},,,,,",
            ",result,table,_time,_value,_field,_measurement",
            *[f",,0,{t},{v},{fields[result]},water_quality" for t, v in rows],
            "",
        ]

    tables = table("values", "double", values) + table("flags", "string", flags)
    if counts:
        tables += table("counts", "long", list(counts)) + table("dls", "long", list(dls))
    return "\r\n".join(tables) + "\r\n"


@pytest.fixture
def flux_stub() -> Iterator[FluxStub]:
    stub = FluxStub()
    yield stub
    stub.close()


def _options(request: dict[str, Any]) -> dict[str, Any]:
    """The bound values of a query request: option name -> AST literal."""
    return {s["assignment"]["id"]["name"]: s["assignment"]["init"] for s in request["body"]["extern"]["body"]}


def test_flux_binds_every_value_as_an_option(flux_stub: FluxStub) -> None:
    """The Flux text is the fixed query; station, bucket, fields and times travel as AST literals."""
    flux_stub.answers.append(
        raw_csv([("2026-11-25T06:00:00Z", 0.3, "N"), ("2026-11-25T06:01:00Z", 0.4, "M")], below_dl=(1,))
    )
    config = InfluxDBSinkConfig(name="v2", url=flux_stub.url, org="eco", bucket="water", token="read-token")
    query = InfluxDBQuery(config)
    try:
        points = query.series(HOSTILE_ID, "nh3n", SINCE, T0, 100)
    finally:
        query.close()
    assert points == [(ns(SINCE), 0.3, "N", False), (ns(SINCE + timedelta(minutes=1)), 0.4, "M", True)]
    (request,) = flux_stub.requests
    assert request["path"] == "/api/v2/query?org=eco"
    assert request["auth"] == "Token read-token"
    assert request["body"]["query"] == FLUX_RAW
    assert HOSTILE_ID not in request["body"]["query"]
    options = _options(request)
    assert options["stationId"] == {"type": "StringLiteral", "value": HOSTILE_ID}
    assert options["bucketName"] == {"type": "StringLiteral", "value": "water"}
    assert options["measurementName"] == {"type": "StringLiteral", "value": "water_quality"}
    assert options["fieldName"] == {"type": "StringLiteral", "value": "nh3n"}
    assert options["flagFieldName"] == {"type": "StringLiteral", "value": "nh3n_flag"}
    assert options["dlFieldName"] == {"type": "StringLiteral", "value": "nh3n_dl"}
    assert options["dataKind"] == {"type": "StringLiteral", "value": "realtime"}
    assert options["rangeStart"] == {"type": "DateTimeLiteral", "value": "2026-11-25T06:00:00.000000000Z"}
    assert options["rangeStop"] == {"type": "DateTimeLiteral", "value": "2026-11-25T08:00:00.000000000Z"}
    assert options["rowLimit"] == {"type": "IntegerLiteral", "value": "101"}


def test_flux_buckets_past_max_points(flux_stub: FluxStub) -> None:
    """More rows than max_points: a second query with the window bound as a duration, merged by time."""
    flux_stub.answers.append(raw_csv([(f"2026-11-25T06:0{i}:00Z", 0.1 * i, "N") for i in range(3)]))
    flux_stub.answers.append(
        bucket_csv(
            values=[("2026-11-25T06:00:00Z", 0.25), ("2026-11-25T07:00:00Z", 0.5)],
            flags=[("2026-11-25T07:00:00Z", "M")],
            counts=[("2026-11-25T06:00:00Z", 60), ("2026-11-25T07:00:00Z", 60)],
            dls=[("2026-11-25T06:00:00Z", 60), ("2026-11-25T07:00:00Z", 3)],
        )
    )
    config = InfluxDBSinkConfig(name="v2", url=flux_stub.url, org="eco", bucket="water")
    query = InfluxDBQuery(config)
    try:
        points = query.series("st-1", "nh3n", SINCE, T0, 2, kind=DataKind.HOURLY)
    finally:
        query.close()
    assert points == [(ns(SINCE), 0.25, "N", True), (ns(SINCE + timedelta(hours=1)), 0.5, "M", False)]
    _raw, buckets = flux_stub.requests
    assert buckets["body"]["query"] == FLUX_BUCKETS
    width_us = bucket_ns(SINCE, T0, 2) // 1000
    assert _options(buckets)["windowEvery"] == {
        "type": "DurationLiteral",
        "values": [{"magnitude": width_us, "unit": "us"}],
    }
    assert "rowLimit" not in _options(buckets)
    assert _options(buckets)["dataKind"] == {"type": "StringLiteral", "value": "hourly"}


def test_flux_failure_is_a_query_error(closed_port: int) -> None:
    """A server that does not answer raises QueryError, not the client's exception."""
    config = InfluxDBSinkConfig(name="v2", url=f"http://127.0.0.1:{closed_port}", org="eco", bucket="water")
    query = InfluxDBQuery(config)
    try:
        with pytest.raises(QueryError, match="influxdb"):
            query.series("st-1", "nh3n", SINCE, T0, 10)
    finally:
        query.close()


# --- choosing ----------------------------------------------------------------------------------
def test_make_query_prefers_influxdb_then_influxdb1_then_sqlite(tmp_path: Path) -> None:
    """The chart store is the first InfluxDB 2 sink, else InfluxDB 1.x, else SQLite, unless named."""
    v2 = InfluxDBSinkConfig(name="v2", url="http://127.0.0.1:1", org="o", bucket="b")
    v1 = InfluxDB1SinkConfig(name="v1", url="http://127.0.0.1:1", database="d")
    lite = SQLiteSinkConfig(name="lite", path=tmp_path / "r.db")
    assert isinstance(make_query([lite, v1, v2]), InfluxDBQuery)
    assert isinstance(make_query([lite, v1]), InfluxDB1Query)
    assert isinstance(make_query([lite]), SQLiteQuery)
    assert isinstance(make_query([lite, v1, v2], "lite"), SQLiteQuery)
    with pytest.raises(ValueError, match="no sink named 'other'"):
        make_query([lite], "other")
