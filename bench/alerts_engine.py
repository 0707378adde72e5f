"""Micro-benchmark of the alert engine's `ingest` path (what `AlertService.write` runs).

Builds the stream `bench.throughput` sends (synthetic stations, 8 parameters a message, one
message per station per round), decodes and validates it as the daemon does, then feeds the
readings to a fresh engine with the default rules in batches and prints readings
per CPU-second of this process (what one core does, whatever else the machine runs) and per
second of wall time, for the default rules and, in the same run, for the rules the engine had by
default before issue 18 (which judged every reading against windows).

    .venv/bin/python bench/alerts_engine.py [--stations 1000] [--readings 100000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.config import AlertsConfig
from alerts.engine import AlertEngine
from alerts.store import AlertStore
from config.parameters import default_catalogue
from config.registry import Registry
from config.times import to_ns
from ingest.decoders.ecowatch_json import EcowatchJsonDecoder
from ingest.model import Reading
from ingest.validate import ValidationConfig, Validator
from simulators.load import pregenerate, synthetic_registry

START = datetime(2026, 1, 1, tzinfo=UTC)
# The validator's clock: after the stream, within `validation.max_past_age` of it.
NOW_NS = to_ns(START + timedelta(days=365))


def readings_of(stations: int, count: int) -> tuple[Registry, list[Reading]]:
    """The registry and `count` validated readings of the benchmark's stream."""
    registry = Registry(synthetic_registry(stations))
    validator = Validator(ValidationConfig(), registry, default_catalogue())
    decoder = EcowatchJsonDecoder()
    out: list[Reading] = []
    for topic, payload in pregenerate(count // 8 + 1, list(registry.values()), start=START):
        for raw in decoder.decode(topic, payload).readings:
            reading = validator.validate(raw, {}, NOW_NS)
            if isinstance(reading, Reading):
                out.append(reading)
    return registry, out[:count]


# The default rules before issue 18 (instant-reading compliance and exceedance, instrument faults,
# regional compliance on every tick): the "before" figure, measured in the same run.
LEGACY_RULES: Final[list[dict[str, Any]]] = [
    {"name": "compliance_drop", "kind": "compliance_drop", "severity": "critical"},
    {"name": "exceedance", "kind": "exceedance", "severity": "warning", "recovery_margin": 0.05},
    {"name": "silent_station", "kind": "silent_station", "intervals": 3, "recovery": {"samples": 1}},
    {"name": "instrument_fault", "kind": "instrument_fault", "flags": ["D", "F", "M"], "for": "PT1M"},
    {"name": "warning_level", "kind": "water_level", "condition": "warning"},
    {"name": "guaranteed_level", "kind": "water_level", "condition": "guaranteed", "severity": "critical"},
    {"name": "level_rise", "kind": "water_level", "condition": "rise_rate", "rate_m_per_h": 0.5},
    {"name": "district_compliance", "kind": "regional_compliance", "group_by": "district", "min_share": 1.0},
]


@dataclass(frozen=True)
class Figures:
    built_s: float
    wall_rate: float  # readings per second of wall time
    cpu_rate: float  # readings per second of this process's CPU time: what one core does


def run(
    config: AlertsConfig, registry: Registry, readings: list[Reading], batch: int, directory: Path
) -> Figures:
    """Build an engine on a fresh database and feed it the readings in batches."""
    started = time.perf_counter()
    # keep_samples=False as in the daemon, whose daily assessment reads the readings store.
    engine = AlertEngine(
        config, registry, AlertStore(directory / "alerts.db"), started=START, keep_samples=False
    )
    built = time.perf_counter() - started
    now = datetime.now(UTC)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(readings), batch):
        engine.ingest(readings[i : i + batch], now)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Figures(built, len(readings) / wall, len(readings) / cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000, help="readings per ingest call")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each rule set; the best is reported")
    args = parser.parse_args()
    registry, readings = readings_of(args.stations, args.readings)
    configs = {"default rules": AlertsConfig(), "pre-issue-18 rules": AlertsConfig(rules=LEGACY_RULES)}
    best: dict[str, Figures] = {}
    for _ in range(args.rounds):
        for name, config in configs.items():
            with tempfile.TemporaryDirectory() as tmp:
                figures = run(config, registry, readings, args.batch, Path(tmp))
            if name not in best or figures.cpu_rate > best[name].cpu_rate:
                best[name] = figures
    print(
        f"{len(readings):,} readings, {args.stations:,} stations, batches of {args.batch:,}, "
        f"best of {args.rounds}:"
    )
    for name, figures in best.items():
        print(
            f"  {name:<20} {figures.cpu_rate:>10,.0f} readings per CPU-second  "
            f"{figures.wall_rate:>10,.0f} readings/s wall  (start-up {figures.built_s * 1000:.0f} ms)"
        )
    ratio = best["default rules"].cpu_rate / best["pre-issue-18 rules"].cpu_rate
    print(f"  default / pre-issue-18: {ratio:.2f}x")
    with tempfile.TemporaryDirectory() as tmp:
        run(AlertsConfig(), registry, readings, args.batch, Path(tmp))
        # A second engine on the same database: start-up with the state the first one left.
        started = time.perf_counter()
        AlertEngine(AlertsConfig(), registry, AlertStore(Path(tmp) / "alerts.db"), started=START)
        print(f"  start-up after the run: {(time.perf_counter() - started) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
