"""Benchmark: a monthly report of the national network from the daemon's stores.

3 641 sections (bench/assessment.py's synthetic registry: 40 districts, 7 basins, 300 rivers, one
in ten a lake), 4-hourly results of the 9 basic items for 30 days (≈ 5.9 M results), written
through the daemon's own sinks into SQLite (readings.db), InfluxDB 1.x and VictoriaMetrics (the
`influxdb` sink's /api/v2/write), each server started on loopback (tests/servers.py). Then, per
store, timed:

- read: the store's reader alone (ingest.app.assessment_source), every result of November
  streamed as the core's tuples;
- report: `ecowatch report --config ... --period 2026-11 --format json` in this process (the
  reader, daily values, the month, the previous month and last year's month, regions, the JSON).

Wall seconds are what an operator waits; CPU seconds are this process's (`time.process_time`)
and the database server's (/proc), as the machine is shared. Loading is timed too, for scale.
`--dir DIR` keeps the stores there and reuses them on the next run (loading takes minutes).

    .venv/bin/python bench/assessment_store.py [--sections 3641] [--days 30] [--stores sqlite,influxdb1,vm]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from alerts.assessment_method.report import station_zones
from alerts.assessment_method.rules import default_rules
from alerts.assessment_method.source import ResultsRequest
from bench.assessment import ITEMS, stations
from config.parameters import default_catalogue
from config.registry import Station
from config.times import to_ns
from ingest.app.assessment_source import AssessmentConfig, make_source
from ingest.app.cli import main as ecowatch
from ingest.model import Reading
from ingest.sinks import SinkConfig, make_sink
from ingest.sinks.influxdb import InfluxDBSinkConfig
from ingest.sinks.influxdb1 import InfluxDB1SinkConfig
from ingest.sinks.sqlite import SQLiteSinkConfig
from tests.servers import InfluxDB1Server, Server, VictoriaMetricsServer

STORES: Final = ("sqlite", "influxdb1", "vm")
START: Final = datetime(2026, 10, 31, 16, tzinfo=UTC)  # 2026-11-01 00:00 in Asia/Shanghai
# Readings per sink write: 5 000 points of 9 fields, the batch InfluxDB 1.x takes best (DESIGN.md).
BATCH: Final = 5000 * len(ITEMS)
CLOCK_TICKS: Final = 100  # /proc/<pid>/stat's unit (sysconf CLK_TCK on Linux)


@dataclass
class Figures:
    store: str
    load_s: float
    read_wall_s: float
    read_cpu_s: float
    results: int
    report_wall_s: float
    report_cpu_s: float
    server_cpu_s: float | None
    grade: str


def readings(registry: list[Station], days: int, seed: int = 1) -> Iterator[list[Reading]]:
    """Station by station (each station's points together, as one line protocol point each), in batches."""
    rng = random.Random(seed)
    pools = {code: [round(mid * rng.uniform(0.6, 1.4), 3) for _ in range(997)] for code, mid in ITEMS.items()}
    catalogue = default_catalogue()
    units = {code: catalogue[code].unit for code in ITEMS}
    step, first = 4 * 3600 * 10**9, to_ns(START)
    batch: list[Reading] = []
    k = 0
    for station in registry:
        tags = (
            ("basin", station.basin),
            ("district", station.district),
            ("river", station.river),
            ("station_id", station.id),
        )
        for slot in range(days * 6):
            t = first + slot * step
            for code, pool in pools.items():
                k += 1
                batch.append(
                    Reading(station.id, "water_quality", code, pool[k % 997], units[code], t, tags=tags)
                )
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def load(config: SinkConfig, registry: list[Station], days: int) -> float:
    sink = make_sink(config)
    began = time.perf_counter()
    try:
        for batch in readings(registry, days):
            sink.write(batch)
    finally:
        sink.close()
    return time.perf_counter() - began


def server_cpu(server: Server | None) -> float | None:
    if server is None or server.pid is None:
        return None
    fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def measure(
    name: str,
    sink: SinkConfig,
    folder: Path,
    registry_file: Path,
    registry: list[Station],
    server: Server | None,
) -> tuple[float, float, int, float, float, float | None, str]:
    rules = default_rules()
    request = ResultsRequest(
        ((date(2026, 11, 1), date(2026, 12, 1)),), station_zones(registry, rules), tuple(rules.decimals)
    )
    source = make_source(AssessmentConfig(), [sink])
    cpu0, server0, wall0 = time.process_time(), server_cpu(server), time.perf_counter()
    count = sum(1 for _ in source.results(request))
    read_wall, read_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    source.close()
    config = folder / f"{name}.yaml"
    settings = {"data_dir": str(folder / "data"), "registry": str(registry_file), "sinks": [_sink_json(sink)]}
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    out = folder / f"{name}-report.json"
    cpu0, wall0 = time.process_time(), time.perf_counter()
    argv = ["report", "--config", str(config), "--period", "2026-11", "--today", "2026-12-02", "-o", str(out)]
    code = ecowatch(argv)
    report_wall, report_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if code != 0:
        raise SystemExit(f"ecowatch report from {name} exited {code}")
    server1 = server_cpu(server)
    used = None if server0 is None or server1 is None else server1 - server0
    grade = str(yaml.safe_load(out.read_text(encoding="utf-8"))["overall"]["grade"])
    return read_wall, read_cpu, count, report_wall, report_cpu, used, grade


def _sink_json(sink: SinkConfig) -> dict[str, Any]:
    data: dict[str, Any] = sink.model_dump(mode="json", exclude_none=True)
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sections", type=int, default=3641)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--stores", default=",".join(STORES), help=f"comma-separated, of {', '.join(STORES)}")
    parser.add_argument("--dir", type=Path, help="keep the stores here and reuse them (default: a temp dir)")
    args = parser.parse_args()
    wanted = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(wanted) - set(STORES)
    if unknown:
        parser.error(f"unknown stores {sorted(unknown)}")
    registry = stations(args.sections)
    count = args.sections * args.days * 6 * len(ITEMS)
    print(f"{args.sections} sections, {args.days} days of 4-hourly results of {len(ITEMS)} items: {count:,}")
    figures: list[Figures] = []
    with contextlib.ExitStack() as stack:
        folder = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ecowatch-bench-")))
        folder.mkdir(parents=True, exist_ok=True)
        registry_file = folder / "stations.yaml"
        entries = [s.model_dump(mode="json", exclude_none=True) for s in registry]
        registry_file.write_text(yaml.safe_dump({"stations": entries}, allow_unicode=True), encoding="utf-8")
        for name in wanted:
            server: Server | None = None
            sink: SinkConfig
            if name == "sqlite":
                sink = SQLiteSinkConfig(name="sqlite", path=folder / "readings.db")
            elif name == "influxdb1":
                server = stack.enter_context(InfluxDB1Server(folder))
                sink = InfluxDB1SinkConfig.model_validate(
                    {"name": "influxdb1", "url": server.url, "database": "water"}
                )
                server.create_database("water")
            else:
                server = stack.enter_context(VictoriaMetricsServer(folder))
                sink = InfluxDBSinkConfig.model_validate(
                    {"name": "vm", "url": server.url, "org": "eco", "bucket": "water"}
                )
            marker = folder / f"{name}.loaded"
            if marker.exists() and marker.read_text() == f"{args.sections} {args.days}":
                loading = 0.0
                print(f"{name}: reusing the data in {folder}")
            else:
                loading = load(sink, registry, args.days)
                marker.write_text(f"{args.sections} {args.days}")
                print(f"{name}: loaded in {loading:.1f} s ({count / loading:,.0f} results/s)")
            if isinstance(server, VictoriaMetricsServer):
                server.flush()
            read_wall, read_cpu, results, report_wall, report_cpu, server_s, grade = measure(
                name, sink, folder, registry_file, registry, server
            )
            figures.append(
                Figures(name, loading, read_wall, read_cpu, results, report_wall, report_cpu, server_s, grade)
            )
            if server is not None:
                server.stop()
    print()
    print("| store | results read | read: wall s, CPU s | report: wall s, CPU s | server CPU s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for f in figures:
        used = "—" if f.server_cpu_s is None else f"{f.server_cpu_s:.1f}"
        print(f"| {f.store} | {f.results:,} | {f.read_wall_s:.1f}, {f.read_cpu_s:.1f} | "
              f"{f.report_wall_s:.1f}, {f.report_cpu_s:.1f} | {used} |")  # fmt: skip
    print(
        f"overall grade: {', '.join(sorted({f.grade for f in figures}))} (the same report from every store)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
