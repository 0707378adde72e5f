"""Micro-benchmark of the processor worker's path: `process_batch` over the benchmark's stream.

What the spawned worker runs per raw-log record (decode the record, route, decode the JSON,
validate every reading, encode the readings record), in this process, without pipes. The stream
is `bench.throughput`'s: 1 000 synthetic stations in a registry file, messages of 8 parameters in
our JSON schema on `ecowatch/v1/{district}/{station_id}/{kind}`, stations in turn. Prints µs of
CPU per message, the median of `--repeat` passes over the whole stream in batches of 2 000 (the
daemon's `batch_records`), and checks that every message was accepted. With `--worker` it also
runs the passes through a `WorkerProcess` (spawned child, pickling and pipe included, as in the
daemon) and prints the child's CPU per message, read from /proc.

    .venv/bin/python bench/processor.py [--messages 100000] [--stations 1000] [--batch 2000]
        [--repeat 5] [--worker] [--profile FILE]   # cProfile of one more pass, as pstats
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.parameters import default_catalogue
from config.registry import Registry
from config.times import to_ns
from ingest.decoders.ecowatch_json import EcowatchJsonDecoder
from ingest.processor import MessageProcessor, Processed, Route, WorkerProcess, process_batch
from ingest.records import encode_message
from ingest.topics import TopicTemplate
from ingest.validate import ValidationConfig, Validator
from simulators.load import pregenerate, synthetic_registry, write_registry

TOPIC_TEMPLATE = "ecowatch/v1/{district}/{station_id}/{kind}"
START = datetime(2026, 1, 1, tzinfo=UTC)
# A year after the stream starts: every reading is in the past and within validation.max_past_age.
NOW_NS = to_ns(START + timedelta(days=365))


def build(stations: int, messages: int, directory: Path) -> tuple[MessageProcessor, list[tuple[int, bytes]]]:
    """The core as `build_processor_core` builds it, and the stream as raw-log records."""
    registry_file = directory / "registry.yaml"
    write_registry(synthetic_registry(stations), registry_file)
    registry = Registry.load(registry_file)
    config = ValidationConfig()
    validator = Validator(config, registry, default_catalogue())
    route = Route(TopicTemplate.parse(TOPIC_TEMPLATE), "json", EcowatchJsonDecoder())
    core = MessageProcessor([route], validator, config.max_payload_bytes)
    stream = pregenerate(messages, list(registry.values()), start=START)
    received_ns = time.time_ns()
    records = [
        (offset, encode_message(topic.encode(), payload, received_ns))
        for offset, (topic, payload) in enumerate(stream)
    ]
    return core, records


def one_pass(core: MessageProcessor, records: list[tuple[int, bytes]], batch: int) -> tuple[float, int]:
    """(CPU seconds, readings accepted) of one pass over the records."""
    accepted = 0
    started = time.process_time()
    for i in range(0, len(records), batch):
        results: list[Processed] = process_batch(core, records[i : i + batch], NOW_NS)
        accepted += sum(count for _, count, _, _ in results)
    return time.process_time() - started, accepted


def worker_passes(
    core: MessageProcessor, records: list[tuple[int, bytes]], batch: int, repeat: int
) -> list[float]:
    """µs of the worker child's CPU per message, one figure per pass."""
    worker = WorkerProcess(core)
    worker.start()
    try:
        worker.submit(records[:batch], NOW_NS)  # warm up: imports and caches
        worker.collect()
        (child,) = multiprocessing.active_children()
        out = []
        for _ in range(repeat):
            before = _cpu_seconds(child.pid)
            for i in range(0, len(records), batch):
                worker.submit(records[i : i + batch], NOW_NS)
                worker.collect()
            out.append((_cpu_seconds(child.pid) - before) / len(records) * 1e6)
        return out
    finally:
        worker.stop(timeout=1.0)


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=2000, help="raw-log records per process_batch")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the stream; the median counts")
    parser.add_argument("--worker", action="store_true", help="also measure through a worker process")
    parser.add_argument("--profile", type=Path, help="write a cProfile of one more pass to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecowatch-bench-") as tmp:
        core, records = build(args.stations, args.messages, Path(tmp))
    per_message = []
    for _ in range(args.repeat):
        seconds, accepted = one_pass(core, records, args.batch)
        if accepted != 8 * len(records):
            raise SystemExit(f"only {accepted} of {8 * len(records)} readings accepted")
        per_message.append(seconds / len(records) * 1e6)
    print(
        f"{len(records):,} messages x 8 parameters, {args.stations:,} stations, batches of {args.batch:,}: "
        f"{statistics.median(per_message):.1f} µs per message "
        f"(median of {args.repeat}; {', '.join(f'{v:.1f}' for v in per_message)})"
    )
    if args.worker:
        in_worker = worker_passes(core, records, args.batch, args.repeat)
        print(
            f"through a worker process: {statistics.median(in_worker):.1f} µs of its CPU per message "
            f"(median of {args.repeat}; {', '.join(f'{v:.1f}' for v in in_worker)})"
        )
    if args.profile is not None:
        profiler = cProfile.Profile()
        profiler.runcall(one_pass, core, records, args.batch)
        profiler.dump_stats(args.profile)
        print(f"profile written to {args.profile}")


if __name__ == "__main__":
    main()
