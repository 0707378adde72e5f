"""The log seam on JetStream (one node, R1; three nodes, R3) next to the local WAL, in one run.

For each log: the latency of one append + sync (what a lone message waits for before its PUBACK),
the throughput of appends synced in groups (as `GroupCommitter` does, `--group` records a sync),
and the throughput of one consumer reading it all back in batches of 500. Servers are started on
loopback in a temp dir (tests/servers.py); CPU time is the whole process's (client side only).

    .venv/bin/python -m bench.jetstream_log [--records 20000] [--size 300] [--group 1000] [--latency 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ingest.wal import Log, WriteAheadLog
from ingest.wal.jetstream import JetStreamLog
from tests.servers import NatsCluster, NatsServer


def measure(
    name: str, open_log: Callable[[], Log], records: int, size: int, group: int, samples: int
) -> None:
    log = open_log()
    try:
        payload = bytes(size)
        latencies = []
        for _ in range(samples):
            start = time.perf_counter()
            log.append(payload)
            log.sync()
            latencies.append(time.perf_counter() - start)
        latencies.sort()
        consumer = log.reader("bench", start="end")
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(records):
            log.append(payload)
            if (i + 1) % group == 0:
                log.sync()
        log.sync()
        append_wall, append_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        read = 0
        while read < records and (batch := consumer.read(500, timeout=5.0)):
            read += len(batch)
            consumer.commit(batch[-1][0] + 1)
        read_wall, read_cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        log.close()
    p50 = statistics.median(latencies) * 1e3
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1e3
    print(
        f"{name:<14} append+sync p50 {p50:6.2f} ms  p99 {p99:6.2f} ms | "
        f"grouped append {records / append_wall:8.0f} rec/s ({append_cpu / records * 1e6:5.1f} µs CPU/rec) | "
        f"read+commit {read / read_wall:8.0f} rec/s ({read_cpu / max(read, 1) * 1e6:5.1f} µs CPU/rec)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=300, help="record bytes (a raw MQTT message is ~300)")
    parser.add_argument("--group", type=int, default=1000, help="records per sync in the throughput run")
    parser.add_argument("--latency", type=int, default=300, help="append+sync samples")
    args = parser.parse_args()
    quota = 2 * args.records * (args.size + 200) + 2**20
    sizes = (args.records, args.size, args.group, args.latency)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        measure("wal (fsync)", lambda: WriteAheadLog(root / "wal", quota_bytes=max(quota, 2**28)), *sizes)
        with NatsServer(root / "single") as server:
            measure("jetstream R1", lambda: JetStreamLog([server.url], "bench", quota_bytes=quota), *sizes)
        with NatsCluster(root / "cluster") as cluster:
            measure(
                "jetstream R3",
                lambda: JetStreamLog(cluster.urls, "bench", replicas=3, quota_bytes=quota),
                *sizes,
            )


if __name__ == "__main__":
    main()
