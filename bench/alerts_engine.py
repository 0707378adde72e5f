"""Micro-benchmark of the alert engine's `ingest` path (what `AlertService.write` runs).

Builds the stream `bench.throughput` sends (synthetic stations, 8 parameters a message, one
message per station per round), decodes and validates it as the daemon does, then feeds the
readings to a fresh engine with the default rules in batches and prints readings/s.

    .venv/bin/python bench/alerts_engine.py [--stations 1000] [--readings 100000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.config import AlertsConfig
from alerts.engine import AlertEngine
from alerts.store import AlertStore
from config.parameters import default_catalogue
from config.registry import Registry
from ingest.decoders.ecowatch_json import EcowatchJsonDecoder
from ingest.model import Reading
from ingest.validate import ValidationConfig, Validator
from simulators.load import pregenerate, synthetic_registry

START = datetime(2026, 1, 1, tzinfo=UTC)


def readings_of(stations: int, count: int) -> tuple[Registry, list[Reading]]:
    """The registry and `count` validated readings of the benchmark's stream."""
    registry = Registry(synthetic_registry(stations))
    validator = Validator(ValidationConfig(), registry, default_catalogue())
    decoder = EcowatchJsonDecoder()
    now_ns = 2**62
    out: list[Reading] = []
    for topic, payload in pregenerate(count // 8 + 1, list(registry.values()), start=START):
        for raw in decoder.decode(topic, payload).readings:
            reading = validator.validate(raw, {}, now_ns)
            if isinstance(reading, Reading):
                out.append(reading)
    return registry, out[:count]


def run(registry: Registry, readings: list[Reading], batch: int, directory: Path) -> tuple[float, float]:
    """(seconds to build the engine, readings/s through `ingest`)."""
    started = time.perf_counter()
    engine = AlertEngine(AlertsConfig(), registry, AlertStore(directory / "alerts.db"), started=START)
    built = time.perf_counter() - started
    now = datetime.now(UTC)
    started = time.perf_counter()
    for i in range(0, len(readings), batch):
        engine.ingest(readings[i : i + batch], now)
    return built, len(readings) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000, help="readings per ingest call")
    args = parser.parse_args()
    registry, readings = readings_of(args.stations, args.readings)
    with tempfile.TemporaryDirectory() as tmp:
        built, rate = run(registry, readings, args.batch, Path(tmp))
        print(f"{len(readings):,} readings, {args.stations:,} stations: {rate:,.0f} readings/s")
        # A second engine on the same database: start-up with the history the first one left.
        started = time.perf_counter()
        AlertEngine(AlertsConfig(), registry, AlertStore(Path(tmp) / "alerts.db"), started=START)
        reopened = time.perf_counter() - started
        print(f"start-up: {built * 1000:.0f} ms empty, {reopened * 1000:.0f} ms after the run")


if __name__ == "__main__":
    main()
