"""Micro-benchmark of the write-ahead log's hot path: GroupCommitter.submit, as the paho thread calls it.

Submits records as fast as one thread can, or paced at `--rate` per second (paho receives at
most ~16 000-19 000/s here), and reports the submit rate, the rate at which records became
durable and were acknowledged, how many fsyncs that took and the submit-to-ack latency. Run it
on the disk the daemon will use (`--dir`) as well.

    .venv/bin/python bench/wal_append.py [--records N] [--size 300] [--rate 20000] [--dir PATH] [--no-fsync]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from ingest.wal import GroupCommitter, WriteAheadLog


class CountingLog(WriteAheadLog):
    syncs = 0

    def sync(self) -> int:
        self.syncs += 1
        return super().sync()


def run(directory: Path, records: int, size: int, rate: float, fsync: bool) -> None:
    wal = CountingLog(directory, fsync=fsync)
    submitted_at = [0.0] * records
    latencies: list[float] = []
    done = threading.Event()

    def on_durable(tokens: list[int]) -> None:
        now = time.perf_counter()
        latencies.extend(now - submitted_at[token] for token in tokens)
        if len(latencies) == records:
            done.set()

    committer: GroupCommitter[int] = GroupCommitter(wal, on_durable)
    committer.start()
    record = bytes(size)
    cpu = time.thread_time()
    start = time.perf_counter()
    for mid in range(records):
        if rate and mid % 100 == 0:
            time.sleep(max(0.0, start + mid / rate - time.perf_counter()))
        submitted_at[mid] = time.perf_counter()
        committer.submit(record, mid)
    submitted = time.perf_counter() - start
    cpu = time.thread_time() - cpu
    done.wait()
    durable = time.perf_counter() - start
    committer.stop(10.0)
    wal.close()
    latencies.sort()
    p50, p99 = (latencies[int(q * (records - 1))] * 1000 for q in (0.5, 0.99))
    print(f"records        {records} x {size} bytes, rate={rate or 'max'}, fsync={fsync}, dir={directory}")
    print(
        f"appends/s      {records / submitted:12,.0f}   (submit loop, {cpu / records * 1e6:.2f} µs CPU each)"
    )
    print(f"durable/s      {records / durable:12,.0f}   (all acknowledged after {durable:.3f} s)")
    per_sync = records / wal.syncs
    print(f"syncs/s        {wal.syncs / durable:12,.0f}   ({wal.syncs} syncs, {per_sync:.0f} records each)")
    print(f"ack latency    p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=300, help="record size in bytes")
    parser.add_argument("--rate", type=float, default=0.0, help="records per second (default: flat out)")
    parser.add_argument("--dir", type=Path, help="log directory (default: a fresh temporary one)")
    parser.add_argument("--no-fsync", action="store_true")
    args = parser.parse_args()
    if args.dir is not None:
        run(args.dir, args.records, args.size, args.rate, not args.no_fsync)
        return
    with tempfile.TemporaryDirectory(prefix="wal-bench-") as tmp:
        run(Path(tmp), args.records, args.size, args.rate, not args.no_fsync)


if __name__ == "__main__":
    main()
