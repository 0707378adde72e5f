"""The store readers behind `ecowatch report --config` (ingest.app.assessment_source), one by one.

SQLite with the sink's own file: data kinds chosen per station, item and month, below-detection
marks, a schema 1 file (kinds in the tags). Flux by what influxdb-client sends to a stub
`/api/v2/query` (no InfluxDB 2 on this machine) and how the annotated CSV of the pivot is read
back. InfluxQL and VictoriaMetrics by their statements (tests/integration/test_report_from_store.py
reads whole months back from the real servers). Then the choice of reader and the CLI's errors.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from alerts.assessment_method.source import ResultRow, ResultsRequest, SourceError
from config.times import to_ns
from ingest.app.assessment_source import AssessmentConfig, ProbedResults, make_source
from ingest.app.assessment_source.flux import FLUX, FluxResults, rfc3339_ns
from ingest.app.assessment_source.influxdb1 import InfluxQLResults
from ingest.app.assessment_source.sqlite import SQLiteResults
from ingest.app.assessment_source.victoriametrics import VictoriaMetricsResults
from ingest.app.cli import main
from ingest.model import DataFlag, Reading
from ingest.sinks.influxdb import InfluxDBSinkConfig
from ingest.sinks.influxdb1 import InfluxDB1SinkConfig
from ingest.sinks.sqlite import SQLiteSink, SQLiteSinkConfig
from tests.dashboard.test_readings_query import FluxStub, _options

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC8 = datetime(2026, 11, 1, tzinfo=UTC) - timedelta(hours=8)  # 2026-11-01 00:00 in Shanghai
KINDS = ("realtime", "hourly", "lab")
NOVEMBER = ResultsRequest(((date(2026, 11, 1), date(2026, 12, 1)),), {"a": SHANGHAI}, ("nh3n", "tp"))


def _reading(
    station: str, code: str, value: float, hours: int, kind: str | None = None, *, below: bool = False
) -> Reading:
    tags = {"station_id": station, **({"data_kind": kind} if kind else {})}
    return Reading(
        station_id=station,
        measurement="water_quality",
        parameter=code,
        value=value,
        unit="mg/L",
        time_ns=to_ns(UTC8 + timedelta(hours=hours)),
        flag=DataFlag.NORMAL,
        tags=tuple(sorted(tags.items())),
        below_dl=below,
    )


def _read(source: SQLiteResults | FluxResults, request: ResultsRequest = NOVEMBER) -> list[ResultRow]:
    return sorted(tuple(row) for row in source.results(request))  # type: ignore[misc]


# --- SQLite ------------------------------------------------------------------------------------
@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    """a: real-time and lab NH3-N; b: lab only; c: hourly and lab; a's TP below the limit; one in December."""
    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=tmp_path / "readings.db"))
    sink.write(
        [
            _reading("a", "nh3n", 0.3, 4),
            _reading("a", "nh3n", 0.9, 5, "lab"),
            _reading("a", "tp", 0.01, 4, below=True),
            _reading("b", "nh3n", 0.5, 4, "lab"),
            _reading("c", "nh3n", 0.7, 4, "hourly"),
            _reading("c", "nh3n", 0.8, 5, "lab"),
            _reading("c", "nh3n", 0.1, 4, "minute"),
            _reading("a", "nh3n", 2.0, 24 * 30 + 1),  # 1 December, Shanghai time: outside the month
        ]
    )
    sink.close()
    return tmp_path / "readings.db"


def test_sqlite_takes_the_first_kind_present_per_station_and_item(sqlite_file: Path) -> None:
    """Real-time beats lab (a), lab alone counts (b), hourly beats lab (c); minute values are not read."""
    request = ResultsRequest(NOVEMBER.windows, {"a": SHANGHAI, "b": SHANGHAI, "c": SHANGHAI}, ("nh3n", "tp"))
    rows = _read(SQLiteResults(sqlite_file, kinds=KINDS), request)
    at = to_ns(UTC8 + timedelta(hours=4))
    assert rows == [
        ("a", at, "nh3n", 0.3, "N", 0),
        ("a", at, "tp", 0.01, "N", 1),
        ("b", at, "nh3n", 0.5, "N", 0),
        ("c", at, "nh3n", 0.7, "N", 0),
    ]
    only_lab = _read(SQLiteResults(sqlite_file, kinds=("lab",)), request)
    assert [(r[0], r[3]) for r in only_lab] == [("a", 0.9), ("b", 0.5), ("c", 0.8)]
    assert (
        _read(
            SQLiteResults(sqlite_file, kinds=KINDS),
            ResultsRequest(NOVEMBER.windows, {"z": SHANGHAI}, ("nh3n",)),
        )
        == []
    )


def test_sqlite_reads_a_schema_1_file_with_kinds_in_the_tags(tmp_path: Path) -> None:
    """A file the sink has not upgraded: no below_dl column, the kind in the tags JSON."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE readings (station_id TEXT NOT NULL, parameter TEXT NOT NULL, time_ns INTEGER NOT NULL,"
            " measurement TEXT NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL, flag TEXT NOT NULL,"
            " tags TEXT NOT NULL, PRIMARY KEY (station_id, parameter, time_ns)) WITHOUT ROWID;"
            "PRAGMA user_version = 1;"
        )
        t = to_ns(UTC8 + timedelta(hours=4))
        db.executemany(
            "INSERT INTO readings VALUES (?, ?, ?, 'water_quality', ?, 'mg/L', ?, ?)",
            [
                ("a", "nh3n", t, 0.3, "D", '{"station_id":"a"}'),
                ("a", "nh3n", t + 1, 0.9, "N", '{"data_kind":"lab","station_id":"a"}'),
                ("b", "nh3n", t, 0.5, "N", '{"data_kind":"lab","station_id":"b"}'),
            ],
        )
    db.close()
    rows = _read(
        SQLiteResults(path, kinds=KINDS),
        ResultsRequest(NOVEMBER.windows, {"a": SHANGHAI, "b": SHANGHAI}, ("nh3n",)),
    )
    assert rows == [
        ("a", t, "nh3n", 0.3, "D", 0),
        ("b", t, "nh3n", 0.5, "N", 0),
    ]  # a flagged result is still a result


def test_sqlite_without_a_file_says_so(tmp_path: Path) -> None:
    """A path with nothing stored is an error naming it, not an empty report."""
    with pytest.raises(SourceError, match="no such file"):
        _read(SQLiteResults(tmp_path / "none.db", kinds=KINDS))


# --- Flux --------------------------------------------------------------------------------------
def _pivot_csv(rows: list[tuple[str, str, str, str, str]]) -> str:
    """The annotated CSV of the pivot: one table per station; columns nh3n, nh3n_dl, nh3n_flag."""
    lines = [
        "#datatype,string,long,dateTime:RFC3339,string,string,double,long,string",
        "#group,false,false,false,true,true,false,false,false",
        "#default,_result,,,,,,,",
        ",result,table,_time,_measurement,station_id,nh3n,nh3n_dl,nh3n_flag",
    ]
    tables: dict[str, int] = {}
    for station, t, value, dl, flag in rows:
        table = tables.setdefault(station, len(tables))
        lines.append(f",,{table},{t},water_quality,{station},{value},{dl},{flag}")
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.fixture
def flux_stub() -> Iterator[FluxStub]:
    stub = FluxStub()
    yield stub
    stub.close()


def test_flux_binds_every_value_and_reads_the_pivot(flux_stub: FluxStub) -> None:
    """One query per kind, values bound as options; a station served by real-time values skips lab."""
    flux_stub.answers += [
        _pivot_csv(
            [("a", "2026-10-31T20:00:00Z", "0.3", "", "N"), ("a", "2026-11-01T00:00:00Z", "0.01", "1", "T")]
        ),
        "",  # no hourly values
        _pivot_csv(
            [("a", "2026-10-31T20:00:00Z", "0.9", "", ""), ("b", "2026-10-31T20:00:00Z", "0.5", "", "")]
        ),
    ]
    config = InfluxDBSinkConfig(name="v2", url=flux_stub.url, org="eco", bucket="water", token="read-token")
    source = FluxResults(config, kinds=KINDS, timeout=timedelta(seconds=5))
    try:
        rows = _read(source, ResultsRequest(NOVEMBER.windows, {"a": SHANGHAI}, ("nh3n",)))
    finally:
        source.close()
    at = rfc3339_ns("2026-10-31T20:00:00Z")
    assert rows == [
        ("a", at, "nh3n", 0.3, "N", False),
        ("a", at + 4 * 3600 * 10**9, "nh3n", 0.01, "T", True),
        ("b", at, "nh3n", 0.5, "N", False),
    ]
    assert [r["body"]["query"] for r in flux_stub.requests] == [FLUX] * 3
    options = _options(flux_stub.requests[0])
    assert options["fieldNames"] == {
        "type": "ArrayExpression",
        "elements": [{"type": "StringLiteral", "value": v} for v in ("nh3n", "nh3n_flag", "nh3n_dl")],
    }
    assert options["kindName"] == {"type": "StringLiteral", "value": "realtime"}
    assert options["rangeStart"] == {"type": "DateTimeLiteral", "value": "2026-10-31T16:00:00.000000000Z"}
    assert options["rangeStop"] == {"type": "DateTimeLiteral", "value": "2026-11-30T16:00:00.000000000Z"}
    assert [_options(r)["kindName"]["value"] for r in flux_stub.requests] == list(KINDS)
    assert flux_stub.requests[0]["auth"] == "Token read-token"


def test_rfc3339_keeps_nanoseconds() -> None:
    """Flux times carry up to nine fraction digits; all are kept."""
    base = to_ns(datetime(2026, 11, 1, tzinfo=UTC))
    assert rfc3339_ns("2026-11-01T00:00:00Z") == base
    assert rfc3339_ns("2026-11-01T00:00:00.000000123Z") == base + 123
    assert rfc3339_ns("2026-11-01T00:00:00.5Z") == base + 500_000_000


# --- InfluxQL and VictoriaMetrics: the statements ----------------------------------------------
def test_influxql_statement_quotes_names_and_binds_values() -> None:
    """Identifiers from the catalogue, quoted; the kind and times bound; real-time is the untagged series."""
    config = InfluxDB1SinkConfig(
        name="v1", url="http://127.0.0.1:1", database="d", retention_policy="one year"
    )
    reader = InfluxQLResults(config, kinds=KINDS, timeout=timedelta(seconds=1))
    assert reader.statement("water_quality", ["nh3n", "nh3n_flag", "nh3n_dl"], "realtime") == (
        'SELECT "nh3n", "nh3n_flag", "nh3n_dl" FROM "one year"."water_quality" WHERE time >= $since AND '
        'time < $until AND ("data_kind" = \'\' OR "data_kind" = $kind) GROUP BY "station_id"'
    )
    assert reader.statement("water_quality", ["tp"], "lab").endswith(
        '"data_kind" = $kind GROUP BY "station_id"'
    )
    assert "data_kind" not in reader.statement("water_quality", ["tp"], None)  # no kinds stored


def test_victoriametrics_selector() -> None:
    """Metric names anchored per item; real-time is an empty or `realtime` data_kind label."""
    config = InfluxDBSinkConfig(name="vm", url="http://127.0.0.1:1", org="o", bucket="b")
    reader = VictoriaMetricsResults(config, kinds=KINDS, timeout=timedelta(seconds=1))
    assert reader.selector("water_quality", ["nh3n", "tp"], "realtime") == (
        '{__name__=~"water_quality_(nh3n|tp)",data_kind=~"|realtime"}'
    )
    assert (
        reader.selector("water_quality", ["tp"], "lab", "_dl")
        == '{__name__=~"water_quality_(tp)_dl",data_kind="lab"}'
    )
    assert "flags" in reader.notes[0]


# --- choosing, configuring ----------------------------------------------------------------------
def test_make_source_prefers_influxdb_then_influxdb1_then_sqlite(tmp_path: Path) -> None:
    """As the dashboard: the named sink, else the first InfluxDB 2, InfluxDB 1.x, SQLite; auto probes later."""
    v2 = InfluxDBSinkConfig(name="v2", url="http://127.0.0.1:1", org="o", bucket="b")
    v1 = InfluxDB1SinkConfig(name="v1", url="http://127.0.0.1:1", database="d")
    lite = SQLiteSinkConfig(name="lite", path=tmp_path / "r.db")
    assert isinstance(make_source(AssessmentConfig(), [lite, v1, v2]), ProbedResults)
    assert isinstance(make_source(AssessmentConfig(influxdb_api="flux"), [v2]), FluxResults)
    assert isinstance(
        make_source(AssessmentConfig(influxdb_api="victoriametrics"), [v2]), VictoriaMetricsResults
    )
    assert isinstance(make_source(AssessmentConfig(), [lite, v1]), InfluxQLResults)
    assert isinstance(make_source(AssessmentConfig(sink="lite"), [lite, v1, v2]), SQLiteResults)
    with pytest.raises(ValueError, match="names no configured sink"):
        make_source(AssessmentConfig(sink="other"), [lite])
    with pytest.raises(ValueError, match="kind is letters"):
        AssessmentConfig(data_kinds=("lab", 'x"y'))


def test_report_from_the_store_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No stored file exits 1 naming it; --readings without --registry exits 2."""
    config = tmp_path / "ecowatch.yaml"
    sink = {"type": "sqlite", "name": "local", "path": str(tmp_path / "none.db")}
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "sinks": [sink]}), encoding="utf-8")
    assert main(["report", "--config", str(config), "--period", "2026-11"]) == 1
    assert "none.db: no such file" in capsys.readouterr().err
    assert main(["report", "--period", "2026-11", "--readings", str(tmp_path / "x.csv")]) == 2
    assert "--readings needs --registry" in capsys.readouterr().err
    assert main(["report", "--config", str(tmp_path / "missing.yaml"), "--period", "2026-11"]) == 2


def test_the_report_parser_takes_the_config_option() -> None:
    """`ecowatch report --config` is the entry point's option; --readings and --registry are optional."""
    from ingest.app.cli import build_parser

    args = build_parser().parse_args(["report", "--period", "2026-11", "--config", "x.yaml"])
    assert isinstance(args, argparse.Namespace)
    assert (args.config, args.readings, args.registry) == (Path("x.yaml"), None, None)
