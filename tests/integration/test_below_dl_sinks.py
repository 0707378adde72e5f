"""Results below the detection limit, every kind of value and T/B flags, from each format to each real sink.

Three stations send the same story, one per format: at T0 a real-time message with NH3-N below
the detection limit, TP above the analyser's range (flag T, JSON and HJ 212 only: SenML has no
flags), DO from a station whose link failed (flag B) and CODMn a little below zero (analyser
noise: below the detection limit, limit not known); at the same instant a minute, an hourly and
a daily mean of NH3-N (the hourly one below the detection limit), and from JSON and SenML a lab
result. Everything goes the daemon's way (decode, validate, readings log record) into SQLite, into
VictoriaMetrics through the InfluxDB 2 write API, and into InfluxDB 1.x, and is read back from
each server: the below-DL mark as a number (SQLite column, `_dl` field, VictoriaMetrics metric),
each kind as a series of its own (nothing overwritten at the shared instant), flags where the
store keeps strings, and the dashboard's query path per kind.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from config.hj212 import default_code_table
from config.parameters import default_catalogue
from ingest.app.query import InfluxDB1Query, Point, SQLiteQuery
from ingest.decoders import Decoder
from ingest.decoders.ecowatch_json import EcowatchJsonDecoder, encode
from ingest.decoders.hj212 import HJ212Decoder, frame
from ingest.decoders.senml import SenMLDecoder, encode_senml
from ingest.model import DataKind, Reading
from ingest.records import decode_readings, encode_readings
from ingest.sinks.influxdb import InfluxDBSink, InfluxDBSinkConfig
from ingest.sinks.influxdb1 import InfluxDB1Sink, InfluxDB1SinkConfig
from ingest.sinks.sqlite import SQLiteSink, SQLiteSinkConfig
from ingest.validate import ValidationConfig, Validator
from tests.helpers import T0, T0_NS, registry, station
from tests.servers import InfluxDB1Server, VictoriaMetricsServer

pytestmark = pytest.mark.integration

MN = "50010300000003"
STATIONS = {"json": "st-json", "senml": "st-senml", "hj212": "st-hj212"}
# (kind, NH3-N value, below the detection limit) of the aggregates and lab results at T0.
KINDS = [("minute", 0.31, False), ("hourly", 0.02, True), ("daily", 0.29, False), ("lab", 0.33, False)]
# What each station stores at T0: (parameter, kind) -> (value, flag, below_dl).
Expected = dict[tuple[str, str], tuple[float, str, bool]]


def expected(fmt: str) -> Expected:
    out: Expected = {
        ("nh3n", "realtime"): (0.025, "N", True),
        ("tp", "realtime"): (0.7, "N" if fmt == "senml" else "T", False),
        ("do", "realtime"): (7.5, "N" if fmt == "senml" else "B", False),
        ("codmn", "realtime"): (0.0, "N", True),
    }
    for kind, value, below in KINDS:
        if kind != "lab" or fmt != "hj212":  # HJ 212 has no command for lab results
            out[("nh3n", kind)] = (value, "N", below)
    return out


def _json() -> list[bytes]:
    sid = STATIONS["json"]
    realtime: dict[str, float | str | dict[str, Any]] = {
        "nh3n": "0.025L",
        "tp": {"value": 0.7, "flag": "T"},
        "do": {"value": 7.5, "flag": "B"},
        "codmn": -0.003,
    }
    aggregates = [
        encode(sid, T0, {"nh3n": {"value": value, "below_dl": True} if below else value}, kind=kind)
        for kind, value, below in KINDS
    ]
    return [encode(sid, T0, realtime), *aggregates]


def _senml() -> list[bytes]:
    sid = STATIONS["senml"]
    realtime = encode_senml(
        sid, T0, {"nh3n": ("0.025L", "mg/L"), "tp": (0.7, None), "do": (7.5, None), "codmn": (-0.003, None)}
    )
    aggregates = [
        encode_senml(sid, T0, {"nh3n": (f"{value}L" if below else value, None)}, kind=kind)
        for kind, value, below in KINDS
    ]
    return [realtime, *aggregates]


def _hj212_packet(cn: str, pollutants: dict[str, tuple[str, str]]) -> bytes:
    table = default_code_table()
    field = table.data_commands[cn].value_field
    cp = ";".join(
        f"{table.by_parameter[p].code}-{field}={text},{table.by_parameter[p].code}-Flag={flag}"
        for p, (text, flag) in pollutants.items()
    )
    # T0 is 08:00 UTC: 16:00 station time (Asia/Shanghai), HJ 212's naive DataTime.
    return frame(
        f"QN=20261125160000000;ST=21;CN={cn};PW=123456;MN={MN};Flag=4;CP=&&DataTime=20261125160000;{cp}&&"
    )


def _hj212() -> list[bytes]:
    realtime = _hj212_packet(
        "2011", {"nh3n": ("0.025L", "N"), "tp": ("0.700", "T"), "do": ("7.50", "B"), "codmn": ("-0.003", "N")}
    )
    commands = {"minute": "2051", "hourly": "2061", "daily": "2031"}
    aggregates = [
        _hj212_packet(commands[kind], {"nh3n": (f"{value}L" if below else f"{value}", "N")})
        for kind, value, below in KINDS
        if kind in commands
    ]
    return [realtime, *aggregates]


def _readings() -> list[Reading]:
    """Every message decoded, validated and passed through a readings-log record, as the daemon does."""
    validator = Validator(
        ValidationConfig(),
        registry(
            station(STATIONS["json"]),
            station(STATIONS["senml"]),
            station(STATIONS["hj212"], mn=MN, timezone="Asia/Shanghai"),
        ),
        default_catalogue(),
    )
    decoders: dict[str, Decoder] = {
        "json": EcowatchJsonDecoder(),
        "senml": SenMLDecoder(),
        "hj212": HJ212Decoder(),
    }
    messages = {"json": _json(), "senml": _senml(), "hj212": _hj212()}
    out: list[Reading] = []
    for fmt, payloads in messages.items():
        for payload in payloads:
            decoded = decoders[fmt].decode("t", payload)
            readings, rejections = validator.validate_many(decoded.readings, {}, T0_NS + 600 * 10**9)
            assert (decoded.rejections, rejections) == ([], []), fmt
            out += decode_readings(encode_readings(readings))
    assert len(out) == sum(len(expected(fmt)) for fmt in STATIONS)
    return out


@pytest.fixture(scope="module")
def readings() -> list[Reading]:
    return _readings()


def _by_station(stored: list[Reading]) -> dict[str, Expected]:
    out: dict[str, Expected] = {}
    for r in stored:
        assert r.time_ns == T0_NS
        key = (r.parameter, r.data_kind.value)
        assert key not in out.setdefault(r.station_id, {}), f"{r.station_id} {key} stored twice"
        out[r.station_id][key] = (r.value, r.flag.value, r.below_dl)
    return out


def test_validation_keeps_marks_kinds_and_flags(readings: list[Reading]) -> None:
    """Before any sink: each format gave the same readings (SenML without flags)."""
    assert _by_station(readings) == {sid: expected(fmt) for fmt, sid in STATIONS.items()}
    tp = next(r for r in readings if r.station_id == STATIONS["hj212"] and r.parameter == "tp")
    do = next(r for r in readings if r.station_id == STATIONS["hj212"] and r.parameter == "do")
    assert (tp.is_lower_bound, tp.is_data_problem, do.is_lower_bound, do.is_data_problem) == (
        True,
        False,
        False,
        True,
    )


# --- SQLite -------------------------------------------------------------------------------------
@pytest.fixture
def sqlite_path(tmp_path: Path, readings: list[Reading]) -> Path:
    path = tmp_path / "readings.db"
    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=path))
    try:
        sink.write(readings)
        sink.write(readings)  # a replay of the readings log stores nothing twice
    finally:
        sink.close()
    return path


def test_sqlite_stores_every_mark_kind_and_flag(sqlite_path: Path) -> None:
    """Each station's real-time readings and every kind at the shared instant come back as sent."""
    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=sqlite_path))
    try:
        stored = sink.query(limit=1000)
    finally:
        sink.close()
    assert _by_station(stored) == {sid: expected(fmt) for fmt, sid in STATIONS.items()}


def test_sqlite_chart_query_answers_each_kind_with_its_mark(sqlite_path: Path) -> None:
    """The dashboard's query gives the real-time NH3-N as a marked limit and each kind on request."""
    query = SQLiteQuery(sqlite_path)
    since, until = T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)
    for fmt, sid in STATIONS.items():
        assert query.series(sid, "nh3n", since, until, 10) == [Point(T0_NS, 0.025, "N", True)]
        for kind, value, below in KINDS:
            points = query.series(sid, "nh3n", since, until, 10, kind=DataKind(kind))
            assert points == ([] if (fmt, kind) == ("hj212", "lab") else [Point(T0_NS, value, "N", below)])


# --- VictoriaMetrics (InfluxDB 2 write API) -------------------------------------------------------
def test_victoria_metrics_keeps_the_mark_as_a_number_and_each_kind_as_a_series(
    victoria_metrics: VictoriaMetricsServer, readings: list[Reading]
) -> None:
    """`water_quality_nh3n_dl` = 1 where below the limit; `data_kind` labels keep the kinds apart."""
    sink = InfluxDBSink(
        InfluxDBSinkConfig.model_validate(
            {"name": "tsdb", "url": victoria_metrics.url, "org": "ecowatch", "bucket": "water", "token": "t"}
        )
    )
    try:
        sink.write(readings)
    finally:
        sink.close()

    names = "nh3n|tp|do|codmn"
    wanted = sum(len(expected(fmt)) for fmt in STATIONS)
    series = victoria_metrics.export(f'{{__name__=~"water_quality_({names})"}}', min_series=wanted)
    values: dict[str, Expected] = {}
    for s in series:
        labels = s["metric"]
        assert s["timestamps"] == [T0_NS // 10**6]
        key = (labels["__name__"].removeprefix("water_quality_"), labels.get("data_kind", "realtime"))
        values.setdefault(labels["station_id"], {})[key] = (s["values"][0], "", False)
    dl_series = victoria_metrics.export(f'{{__name__=~"water_quality_({names})_dl"}}', min_series=1)
    for s in dl_series:
        labels = s["metric"]
        key = (
            labels["__name__"].removeprefix("water_quality_").removesuffix("_dl"),
            labels.get("data_kind", "realtime"),
        )
        assert s["values"] == [1]
        value, flag, _ = values[labels["station_id"]][key]
        values[labels["station_id"]][key] = (value, flag, True)
    # Flags are strings: VictoriaMetrics stores them as 0 (DESIGN.md), so only values and marks count here.
    assert values == {
        sid: {key: (value, "", below) for key, (value, _flag, below) in expected(fmt).items()}
        for fmt, sid in STATIONS.items()
    }


# --- InfluxDB 1.x ---------------------------------------------------------------------------------
def test_influxdb1_keeps_marks_flags_and_kinds(influxdb1: InfluxDB1Server, readings: list[Reading]) -> None:
    """One point per station and kind at T0: float, flag string and integer `_dl` fields; the query path agrees."""
    influxdb1.create_database("ecowatch")
    config = InfluxDB1SinkConfig.model_validate(
        {"name": "legacy", "url": influxdb1.url, "database": "ecowatch"}
    )
    sink = InfluxDB1Sink(config)
    try:
        sink.write(readings)
    finally:
        sink.close()

    stored: dict[str, Expected] = {}
    for point in influxdb1.points("water_quality", "ecowatch"):
        assert point["time"] == T0_NS
        kind = point.get("data_kind") or "realtime"
        for code in ("nh3n", "tp", "do", "codmn"):
            if point.get(code) is not None:
                dl = point.get(f"{code}_dl")
                assert dl in (None, 1), code
                stored.setdefault(point["station_id"], {})[(code, kind)] = (
                    point[code],
                    point[f"{code}_flag"],
                    dl == 1,
                )
    assert stored == {sid: expected(fmt) for fmt, sid in STATIONS.items()}
    types = influxdb1.query('SHOW FIELD KEYS FROM "water_quality"', "ecowatch")["results"][0]["series"][0]
    assert dict(types["values"])["nh3n_dl"] == "integer"

    query = InfluxDB1Query(config)
    try:
        since, until = T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)
        assert query.series(STATIONS["hj212"], "nh3n", since, until, 10) == [Point(T0_NS, 0.025, "N", True)]
        assert query.series(STATIONS["json"], "nh3n", since, until, 10, kind=DataKind.HOURLY) == [
            Point(T0_NS, 0.02, "N", True)
        ]
        assert query.series(STATIONS["senml"], "tp", since, until, 10) == [Point(T0_NS, 0.7, "N", False)]
        assert query.series(STATIONS["json"], "tp", since, until, 10) == [Point(T0_NS, 0.7, "T", False)]
    finally:
        query.close()


def test_the_json_message_of_the_story_is_plain_schema_v1() -> None:
    """The real-time JSON message is what an operator would send (the README's example forms)."""
    document = orjson.loads(_json()[0])
    assert document["readings"]["nh3n"] == "0.025L"
    assert "kind" not in document
    assert orjson.loads(_json()[2])["kind"] == "hourly"
