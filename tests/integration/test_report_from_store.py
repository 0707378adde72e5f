"""`ecowatch report --config` reads the daemon's store and prints what the offline report prints.

The month of twelve sections of the report tests (tests/alerts/assessment_method/report_data.py:
flags D, S and T, results below the detection limit, a station outside the registry, October for
the 环比) is written through the daemon's own sinks into SQLite, VictoriaMetrics (the `influxdb`
sink's /api/v2/write) and InfluxDB 1.x on loopback; then `ecowatch report --config` with that sink
must print the JSON that `ecowatch report --readings` prints for the same CSV, figure for figure.

"The same CSV" is what the store can hold. VictoriaMetrics keeps no flags (string fields are
stored as 0): its expected CSV has every flag blanked, and the report says so on stderr. A sink
that does not store below-detection marks yet stores the limit as a value: the expected CSV then
has the `L` dropped (the test reads back which case holds, and reports it).
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import pytest
import yaml

from alerts.assessment_method.source import ResultsRequest
from config.registry import Registry
from config.times import to_ns
from ingest.app.assessment_source.influxdb1 import InfluxQLResults
from ingest.app.cli import main
from ingest.model import Reading
from ingest.sinks import SinkConfig, make_sink
from ingest.sinks.influxdb import InfluxDBSinkConfig
from ingest.sinks.influxdb1 import InfluxDB1SinkConfig
from ingest.sinks.sqlite import SQLiteSinkConfig
from tests.alerts.assessment_method.report_data import readings_of, write_dataset
from tests.servers import InfluxDB1Server, VictoriaMetricsServer

pytestmark = pytest.mark.integration

BATCH: Final = 5000
PERIODS: Final = ("2026-11", "2026-Q4", "2026-11-15")
SHANGHAI: Final = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_dataset(tmp_path_factory.mktemp("dataset"))


def as_stored(source: Path, target: Path, *, flags: bool, below_dl: bool) -> Path:
    """The CSV as a store without flags or below-DL marks gives it back."""
    with (
        source.open(encoding="utf-8", newline="") as fh,
        target.open("w", encoding="utf-8", newline="") as out,
    ):
        writer = csv.writer(out)
        for i, row in enumerate(csv.reader(fh)):
            if i and not flags and len(row) > 4:
                row[4] = ""
            if i and not below_dl and row[3].endswith("L"):
                row[3] = row[3][:-1]
            writer.writerow(row)
    return target


def report(out: Path, period: str, *argv: str) -> dict[str, Any]:
    """`ecowatch report --period PERIOD ARGV` as the entry point runs it: the JSON it wrote."""
    assert main(["report", "--period", period, "--output", str(out), *argv]) == 0
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def config_file(folder: Path, registry: Path, sink: dict[str, Any]) -> Path:
    """The daemon's configuration with the one sink."""
    path = folder / "ecowatch.yaml"
    settings = {"data_dir": str(folder / "data"), "registry": str(registry), "sinks": [sink]}
    path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return path


def written(config: SinkConfig, dataset: tuple[Path, Path]) -> None:
    """The dataset through the sink, in batches as the delivery loop gives them."""
    registry, readings = dataset
    rows = readings_of(readings, Registry.load(registry))
    sink = make_sink(config)
    try:
        for i in range(0, len(rows), BATCH):
            sink.write(rows[i : i + BATCH])
    finally:
        sink.close()


def check_store(tmp_path: Path, dataset: tuple[Path, Path], sink: dict[str, Any], *, flags: bool) -> None:
    """Every period of `PERIODS` from the store equals the offline report of what the store holds."""
    registry, readings = dataset
    config = config_file(tmp_path, registry, sink)
    november = report(tmp_path / "store-2026-11.json", "2026-11", "--config", str(config))
    s05 = next(s for s in november["sections"] if s["station_id"] == "s05")
    marks = bool(s05["values"]["tp"]["below_dl"])  # every TP result of s05 is `0.01L`
    print(f"{sink['type']}: below-detection marks {'kept' if marks else 'not stored by the sink yet'}")
    expected = as_stored(readings, tmp_path / "as-stored.csv", flags=flags, below_dl=marks)
    for period in PERIODS:
        got = report(tmp_path / f"store-{period}.json", period, "--config", str(config))
        want = report(
            tmp_path / f"csv-{period}.json", period, "--readings", str(expected), "--registry", str(registry)
        )
        assert got == want, period
    assert got["sections"], "the reports hold sections"


def test_sqlite(tmp_path: Path, dataset: tuple[Path, Path]) -> None:
    """The SQLite sink's file: every figure of every period as offline, flags kept."""
    path = tmp_path / "readings.db"
    written(SQLiteSinkConfig(name="local", path=path), dataset)
    check_store(tmp_path, dataset, {"type": "sqlite", "name": "local", "path": str(path)}, flags=True)


def test_influxdb1(tmp_path: Path, dataset: tuple[Path, Path], influxdb1: InfluxDB1Server) -> None:
    """InfluxDB 1.x through InfluxQL: every figure as offline, flags kept."""
    influxdb1.create_database("water")
    sink = {"type": "influxdb1", "name": "legacy", "url": influxdb1.url, "database": "water"}
    written(InfluxDB1SinkConfig.model_validate(sink), dataset)
    check_store(tmp_path, dataset, sink, flags=True)


def test_victoriametrics(
    tmp_path: Path,
    dataset: tuple[Path, Path],
    victoria_metrics: VictoriaMetricsServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """VictoriaMetrics through its export API: as offline once the flags are gone, and it says so."""
    sink = {"type": "influxdb", "name": "vm", "url": victoria_metrics.url, "org": "eco", "bucket": "water"}
    written(InfluxDBSinkConfig.model_validate(sink), dataset)
    victoria_metrics.flush()
    check_store(tmp_path, dataset, sink, flags=False)
    assert "keeps no data flags" in capsys.readouterr().err


def test_influxdb1_kinds_and_missing_fields(influxdb1: InfluxDB1Server) -> None:
    """Lab values count only where there is no real-time value; a database without marks reads too."""
    influxdb1.create_database("plain")
    config = InfluxDB1SinkConfig.model_validate(
        {"type": "influxdb1", "name": "v1", "url": influxdb1.url, "database": "plain"}
    )
    start = datetime(2026, 10, 31, 16, tzinfo=UTC)  # 1 November, Shanghai

    def reading(station: str, value: float, kind: str | None = None) -> Reading:
        tags = {"station_id": station, **({"data_kind": kind} if kind else {})}
        return Reading(
            station, "water_quality", "nh3n", value, "mg/L", to_ns(start), tags=tuple(sorted(tags.items()))
        )

    request = ResultsRequest(
        ((date(2026, 11, 1), date(2026, 12, 1)),), {"a": SHANGHAI, "b": SHANGHAI}, ("nh3n", "tp")
    )
    reader = InfluxQLResults(config, kinds=("realtime", "lab"), timeout=timedelta(seconds=10))
    sink = make_sink(config)
    try:
        sink.write([reading("a", 0.3)])  # no kinds, no marks, no TP in this database yet
        assert list(reader.results(request)) == [("a", to_ns(start), "nh3n", 0.3, "N", False)]
        sink.write([reading("a", 0.9, "lab"), reading("b", 0.5, "lab")])
        assert sorted(reader.results(request)) == [
            ("a", to_ns(start), "nh3n", 0.3, "N", False),
            ("b", to_ns(start), "nh3n", 0.5, "N", False),
        ]
    finally:
        sink.close()
        reader.close()
