"""Cluster mode (1, 2, 3 workers) next to single-node mode, in one run: throughput, latency, CPU.

Each configuration gets its own servers, store, receiver and ecowatch processes in a temp dir,
all on 127.0.0.1, stopped before the next one starts:

- single-node: Mosquitto and one `ecowatch run` without a `cluster:` section (MQTT → write-ahead
  logs → SQLite sink, and the alert engine → outbox → webhook), default settings;
- cluster, W workers: three nats-server nodes (JetStream, an MQTT listener each) and W
  `ecowatch run` processes with a `cluster:` section (the deployment's defaults: 64 partitions,
  R3, batch 500, leases of 5 s renewed every second, checkpoints every 10 s), started together
  and measured once the partitions are balanced and one worker holds the receiver's dispatch lease
  (a worker that exits during start-up is started again, at most twice, as an orchestrator would;
  the report counts it).

The sink is SQLite everywhere. In cluster mode all workers write one shared file (as
`tests/integration/cluster_support.py` does): one readings store, like single-node mode's, at
the price of one writer at a time. The extra row `--per-worker-store W` (default 3; 0 to skip)
gives each worker its own file, to show what that lock costs. Stations publish MQTT 3.1.1
QoS 1 through one connection (to Mosquitto, or to the first NATS node's listener). Per
configuration:

0. warm-up: one message per station, until stored and processed (start-up work: decode worker
   processes, tables, partition readers); then the idle CPU over 3 s without traffic.
1. burst: `--messages` messages of 8 parameters from `--stations` stations (the same number
   each, times of a few minutes ago), published as fast as the broker acknowledges (a window of
   1 000). msg/s: from the first publish until the store holds every station's last message (a
   station's messages are stored in order). CPU (user + system, /proc) of the ecowatch processes
   (the daemon with its decode workers; the workers) and of the broker (Mosquitto; the three
   nats-server nodes) from the first publish until the burst is processed completely: for
   single-node until its alert engine caught up (it yields to ingest during a burst, see
   bench/README.md), for the cluster until every message is handled (stored, evaluated,
   notified, acknowledged).
2. paced: `--rate` msg/s for `--seconds`, each payload stamped with the wall clock just before
   its publish, with `--alarms` exceedance reports (NH3-N 3.0 mg/L, 劣V, from stations that send
   nothing else) spread through it. publish → stored: when a poller (every 10 ms, read-only, on
   the store's time index) first sees the row (so up to 10 ms late); publish → notification: when
   the webhook receiver gets the alert's `firing` event.

It prints a table with the ratios to single-node, the figures behind it, and a projection for
4, 8 and 16 cores from the CPU per message (a projection, not a measurement: see its notes);
`--json` writes the same and every latency sample. Each configuration ends by counting the
store: every reading once, or it fails; a failed configuration is reported and the others still
run (exit status 1). Progress: stage lines on stderr, tqdm bars when stderr is a terminal.

    .venv/bin/python -m bench.cluster [--messages 15000] [--stations 500] [--rate 50] [--seconds 10]
        [--alarms 40] [--workers 1,2,3] [--per-worker-store 3] [--no-single] [--json FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from tqdm import tqdm

from config.registry import Station
from simulators.formats import JsonFormat
from simulators.load import pregenerate, synthetic_registry, write_registry
from simulators.publish import MqttOptions, MqttPublisher
from tests.helpers import wait_for
from tests.integration.alert_scenario_support import Receiver, readings
from tests.integration.daemon_process import DaemonError, DaemonProcess, proc_usage
from tests.servers import MosquittoServer, NatsCluster

PARAMETERS: Final = 8  # readings per message of the load stream (simulators.load.LOAD_CODES)
SPIKE: Final = 3.0  # NH3-N mg/L: 劣V, above every target class, below the emergency threshold
WINDOW: Final = 1000  # the publisher's unacknowledged messages (as bench.throughput)
POLL_S: Final = 0.01  # the latency poller's interval: the resolution of publish → stored
DRAIN_POLL_S: Final = 0.02  # the burst's end: one cheap indexed count per store
IDLE_S: Final = 3.0  # the idle CPU's window
TIMEOUT_S: Final = 300.0
READY_TIMEOUT_S: Final = 90.0
START_ATTEMPTS: Final = 3  # a worker that exits during start-up is started again, as an orchestrator would
STREAM_MAX_BYTES: Final = 256 * 2**20  # the test nodes store 1 GB each (tests.servers.NatsServer)
CORES: Final = (4, 8, 16)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bar_of(total: int, what: str) -> Any:
    """A tqdm message counter on stderr, on a terminal only (as simulators.runner.progress_bar)."""
    return tqdm(
        total=total, unit="msg", desc=what, file=sys.stderr, leave=False, disable=not sys.stderr.isatty()
    )


@dataclass(frozen=True)
class Stream:
    """The load: a warm-up round (one message per station), then the burst's rounds."""

    stations: list[Station]
    alarms: list[Station]  # the exceedances' stations, one report each
    warm: list[tuple[str, bytes]]
    burst: list[tuple[str, bytes]]
    warm_ns: int  # the warm-up round's time
    last_ns: int  # the burst's last round's time


def make_stream(messages: int, stations: int, alarms: int) -> Stream:
    rounds = math.ceil(messages / stations)
    registry = synthetic_registry(stations)
    # MNs apart from the load stations' (99…): the registry refuses duplicates.
    alarm_stations = [
        s.model_copy(update={"mn": f"98{i + 1:012d}"})
        for i, s in enumerate(synthetic_registry(alarms, prefix="alarm") if alarms else [])
    ]
    step = timedelta(seconds=1)
    start = datetime.now(UTC).replace(microsecond=0) - step * (rounds + 60)
    generated = pregenerate((rounds + 1) * stations, registry, start=start, step=step)
    return Stream(
        registry,
        alarm_stations,
        generated[:stations],
        generated[stations:],
        time_ns_of(start),
        time_ns_of(start + step * rounds),
    )


# --- the systems under test ------------------------------------------------------------------------
class SingleNode:
    """Mosquitto and one daemon with a SQLite sink, notifying the receiver."""

    def __init__(self, tmp: Path, registry: Path, receiver: Receiver) -> None:
        self.name = "single-node"
        self.workers = 0
        self.restarts = 0
        self.store_layout = "one file"
        self.broker = MosquittoServer(tmp)
        self.mqtt_port = self.broker.port
        self.stores = [tmp / "readings.db"]
        self.daemon = DaemonProcess(
            tmp / "daemon",
            {
                "registry": str(registry),
                "mqtt": {"port": self.broker.port, "client_id": "bench-daemon"},
                "sinks": [{"type": "sqlite", "name": "store", "path": str(self.stores[0])}],
                "notify": {"receivers": [receiver.config()]},
            },
        )
        self.published = 0

    def start(self) -> None:
        self.broker.start()
        self.daemon.start()
        self.daemon.wait_for(lambda s: bool(s["mqtt_connected"]), READY_TIMEOUT_S, "connected to the broker")

    def stop(self) -> None:
        self.daemon.close()
        self.broker.stop()

    def app_pids(self) -> list[int]:
        return [self.daemon.pid]

    def broker_pids(self) -> list[int]:
        return [self.broker.pid] if self.broker.pid is not None else []

    def handled(self) -> bool:
        """Every message published so far processed, stored and evaluated."""
        stats = self.daemon.stats()
        logs = stats["logs"]
        return (
            int(logs["raw_processed"]) >= self.published
            and all(s["committed"] == logs["readings_logged"] for s in stats["sinks"].values())
            and stats["alerts"]["pending"] == 0
        )

    def deadletters(self) -> int:
        return sum(int(n) for n in self.daemon.stats()["deadletters"].values())


class Cluster:
    """Three NATS nodes with MQTT listeners and `workers` cluster workers."""

    def __init__(
        self, tmp: Path, registry: Path, receiver: Receiver, workers: int, partitions: int, shared: bool
    ) -> None:
        self.name = f"cluster, {workers} worker{'s' if workers > 1 else ''}"
        self.store_layout = "one shared file" if shared else "a file per worker"
        if not shared:
            self.name += ", own files"
        self.workers = workers
        self.partitions = partitions
        self.receiver = receiver.name
        self.nats = NatsCluster(tmp / "nats", mqtt=True)
        port = self.nats.nodes[0].mqtt_port
        assert port is not None
        self.mqtt_port = port
        folders = [tmp / f"w{i + 1}" for i in range(workers)]
        self.stores = [tmp / "readings.db"] if shared else [folder / "readings.db" for folder in folders]
        self.daemons = [
            DaemonProcess(
                folder,
                {
                    "registry": str(registry),
                    "cluster": {
                        "servers": self.nats.urls,
                        "partitions": partitions,
                        "worker_id": folder.name,
                        "replicas": 3,
                        "stream_max_bytes": STREAM_MAX_BYTES,
                    },
                    "sinks": [
                        {"type": "sqlite", "name": "store", "path": str(self.stores[-1 if shared else i])}
                    ],
                    "notify": {"receivers": [receiver.config()]},
                },
            )
            for i, folder in enumerate(folders)
        ]
        self.published = 0
        self.restarts = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        self.nats.start()
        # Together, as a StatefulSet starts them; one that exits during start-up is started again,
        # as the orchestrator would (counted: workers racing on a fresh cluster can trip on a
        # bucket whose stream has no leader yet, NoStreamResponseError).
        with ThreadPoolExecutor(len(self.daemons)) as pool:
            for future in [pool.submit(self._start, d) for d in self.daemons]:
                future.result()
        # Where the leases settle: none over ceil(partitions / workers) (22, 22, 20 is stable).
        most = math.ceil(self.partitions / self.workers)

        def balanced() -> bool:
            stats = [d.stats() for d in self.daemons]
            owned = [len(s["owned"]) for s in stats]
            dispatching = sum(bool(s["dispatch"][self.receiver]["dispatching"]) for s in stats)
            return sum(owned) == self.partitions and max(owned) <= most and dispatching == 1

        wait_for(balanced, "the partitions balanced over the workers", READY_TIMEOUT_S, interval=0.25)

    def _start(self, daemon: DaemonProcess) -> None:
        for attempt in range(START_ATTEMPTS):
            try:
                daemon.start(timeout=READY_TIMEOUT_S)
                return
            except DaemonError:
                if attempt == START_ATTEMPTS - 1:
                    raise
                with self._lock:
                    self.restarts += 1
                log(f"[{self.name}] {daemon.folder.name} exited during start-up; starting it again")

    def stop(self) -> None:
        for daemon in self.daemons:
            daemon.close()
        self.nats.stop()

    def app_pids(self) -> list[int]:
        return [d.pid for d in self.daemons]

    def broker_pids(self) -> list[int]:
        return [n.pid for n in self.nats.nodes if n.pid is not None]

    def handled(self) -> bool:
        """Every message published so far handled (stored, evaluated, notified) and acknowledged."""
        stats = [d.stats()["source"] for d in self.daemons]
        return sum(int(s["acked"]) for s in stats) >= self.published

    def deadletters(self) -> int:
        return sum(int(n) for d in self.daemons for n in d.stats()["deadletters"].values())


System = SingleNode | Cluster


# --- measurements ----------------------------------------------------------------------------------
def cpu_of(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) of processes and their children, from /proc."""
    return sum(proc_usage(pid)[0] for pid in pids)


def own_cpu(pid: int) -> float:
    """CPU seconds of one process alone, without its children."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_at(stores: Sequence[Path], time_ns: int) -> int:
    """Readings at exactly `time_ns`, over the stores (cheap: the index on time)."""
    total = 0
    for path in stores:
        if not path.exists():
            continue
        with (
            closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db,
            suppress(sqlite3.OperationalError),  # the sink has not created its table yet
        ):
            (count,) = db.execute("SELECT COUNT(*) FROM readings WHERE time_ns = ?", (time_ns,)).fetchone()
            total += int(count)
    return total


def count_all(stores: Sequence[Path]) -> int:
    total = 0
    for path in stores:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            (count,) = db.execute("SELECT COUNT(*) FROM readings").fetchone()
            total += int(count)
    return total


def time_ns_of(ts: datetime) -> int:
    """A reading's time_ns as the decoder makes it from `ts.isoformat()` (microseconds)."""
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@contextmanager
def publisher(port: int, client_id: str) -> Iterator[MqttPublisher]:
    """Stations' MQTT 3.1.1 QoS 1 connection; on leaving, every message must be acknowledged."""
    options = MqttOptions(port=port, protocol="3.1.1", client_id=client_id, max_unacked=WINDOW)
    with MqttPublisher(options) as client:
        yield client
        if not client.flush(TIMEOUT_S) or client.failed:
            raise RuntimeError(f"publishing failed: {client.failed} not acknowledged")


def warm_up(system: System, stream: Stream) -> tuple[float, float]:
    """One message per station until stored and handled; then the idle cores (ecowatch, broker)."""
    with publisher(system.mqtt_port, "bench-warm-up") as client:
        for topic, payload in stream.warm:
            client.publish(topic, payload)
    system.published += len(stream.warm)
    expected = len(stream.stations) * PARAMETERS
    wait_for(lambda: count_at(system.stores, stream.warm_ns) >= expected, "warm-up stored", TIMEOUT_S)
    wait_for(system.handled, f"{system.name}: warm-up handled", TIMEOUT_S, interval=0.1)
    apps, brokers = system.app_pids(), system.broker_pids()
    app0, broker0, began = cpu_of(apps), cpu_of(brokers), time.monotonic()
    time.sleep(IDLE_S)
    elapsed = time.monotonic() - began
    return (cpu_of(apps) - app0) / elapsed, (cpu_of(brokers) - broker0) / elapsed


@dataclass
class Burst:
    messages: int
    seconds: float  # first publish → every station's last message stored
    acked_seconds: float  # first publish → the last PUBACK
    handled_seconds: float  # first publish → processed completely (the CPU window)
    app_cpu: float  # ecowatch processes, CPU seconds over the window
    main_cpu: float | None  # single-node: the daemon's main process alone
    broker_cpu: float
    bench_cpu: float  # this process: the publisher and the polls

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def us(self, cpu: float) -> float:
        """CPU seconds over the window as µs per message."""
        return cpu / self.messages * 1e6


def burst(system: System, stream: Stream) -> Burst:
    """Publish the burst as fast as acknowledged; time it until stored, CPU until handled."""
    apps, brokers = system.app_pids(), system.broker_pids()
    app0, broker0, bench0 = cpu_of(apps), cpu_of(brokers), time.process_time()
    main0 = own_cpu(apps[0]) if isinstance(system, SingleNode) else None
    began = time.monotonic()
    with (
        bar_of(len(stream.burst), f"{system.name}: burst") as bar,
        publisher(system.mqtt_port, "bench-burst") as client,
    ):
        for index, (topic, payload) in enumerate(stream.burst):
            client.publish(topic, payload)
            if index % 1000 == 999:
                bar.update(1000)
    acked = time.monotonic() - began
    system.published += len(stream.burst)
    expected = len(stream.stations) * PARAMETERS
    wait_for(
        lambda: count_at(system.stores, stream.last_ns) >= expected,
        f"{system.name}: every station's last message stored",
        TIMEOUT_S,
        interval=DRAIN_POLL_S,
    )
    stored = time.monotonic() - began
    wait_for(system.handled, f"{system.name}: the burst handled", TIMEOUT_S, interval=0.1)
    handled = time.monotonic() - began
    app, broker, bench = cpu_of(apps) - app0, cpu_of(brokers) - broker0, time.process_time() - bench0
    main = own_cpu(apps[0]) - main0 if main0 is not None else None
    return Burst(len(stream.burst), stored, acked, handled, app, main, broker, bench)


class _Arrivals(dict[str, dict[str, Any]]):
    """The receiver's events by key, noting when each station's first `firing` event arrived."""

    def __init__(self, arrivals: dict[str, float]) -> None:
        super().__init__()
        self.arrivals = arrivals

    def __setitem__(self, key: str, event: dict[str, Any]) -> None:
        station = event.get("station", {}).get("id")
        if event.get("status") == "firing" and isinstance(station, str):
            self.arrivals.setdefault(station, time.time())
        super().__setitem__(key, event)


class Poller:
    """Sees the rows of expected (station, time_ns) keys appear in the stores; notes when."""

    def __init__(self, stores: Sequence[Path]) -> None:
        self._stores = list(stores)
        self._pending: dict[tuple[str, int], float] = {}
        self.latencies_ms: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-poller", daemon=True)

    def expect(self, station: str, time_ns: int, published: float) -> None:
        with self._lock:
            self._pending[(station, time_ns)] = published

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        connections = [sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5) for p in self._stores]
        try:
            while not self._stop.wait(POLL_S):
                with self._lock:
                    oldest = min((key[1] for key in self._pending), default=None)
                if oldest is None:
                    continue
                # One row per message ('ph' is in every message), from the oldest one awaited on.
                rows = [
                    row
                    for db in connections
                    for row in db.execute(
                        "SELECT station_id, time_ns FROM readings WHERE parameter = 'ph' AND time_ns >= ?",
                        (oldest,),
                    )
                ]
                seen = time.time()
                with self._lock:
                    for key in rows:
                        published = self._pending.pop(key, None)
                        if published is not None:
                            self.latencies_ms.append((seen - published) * 1e3)
        finally:
            for db in connections:
                db.close()


@dataclass
class Paced:
    messages: int
    seconds: float
    stored_ms: list[float]
    notified_ms: list[float]
    app_cores: float  # CPU over the paced stream, in cores
    broker_cores: float


def paced(system: System, stream: Stream, arrivals: dict[str, float], rate: float, seconds: float) -> Paced:
    """The paced stream with the exceedances in it: latencies to stored and to notified."""
    total = max(1, round(rate * seconds))
    alarms = stream.alarms
    slots = {round((i + 0.5) * total / len(alarms)): s for i, s in enumerate(alarms)} if alarms else {}
    encoder = JsonFormat()
    published: dict[str, float] = {}
    apps, brokers = system.app_pids(), system.broker_pids()
    app0, broker0 = cpu_of(apps), cpu_of(brokers)
    with Poller(system.stores) as poller, bar_of(total, f"{system.name}: paced") as bar:
        with publisher(system.mqtt_port, "bench-paced") as client:
            began = time.monotonic()
            for i in range(total):
                delay = began + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now = time.time()
                ts = datetime.fromtimestamp(now, UTC)
                alarm = slots.get(i)
                if alarm is not None:
                    ((topic, payload),) = encoder.encode(alarm, ts, readings(nh3n=SPIKE))
                    station = alarm.id
                    published[station] = now
                else:
                    topic, raw = stream.burst[i % len(stream.burst)]
                    document = orjson.loads(raw)
                    document["ts"] = ts.isoformat()
                    payload = orjson.dumps(document)
                    station = document["station_id"]
                poller.expect(station, time_ns_of(ts), now)
                client.publish(topic, payload)
                bar.update()
            elapsed = time.monotonic() - began
        app, broker = cpu_of(apps) - app0, cpu_of(brokers) - broker0
        system.published += total
        wait_for(lambda: poller.pending() == 0, f"{system.name}: the paced stream stored", TIMEOUT_S)
        wait_for(
            lambda: all(s.id in arrivals for s in alarms),
            f"{system.name}: every exceedance notified",
            TIMEOUT_S,
            detail=lambda: f"notified: {sorted(arrivals)}",
        )
    notified = [(arrivals[s] - at) * 1e3 for s, at in published.items()]
    return Paced(total, elapsed, poller.latencies_ms, notified, app / elapsed, broker / elapsed)


# --- one configuration -----------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    workers: int  # 0: single-node
    store: str
    burst: Burst
    paced: Paced
    idle_app_cores: float  # with no traffic: leases, partition readers' polls, ticks
    idle_broker_cores: float
    deadletters: int
    notifications: int = 0  # events the receiver got (the alarms' and any the load stream raised)
    repeats: int = 0  # events the receiver got again (the same idempotency key)
    restarts: int = 0  # workers started again after exiting during start-up
    projection: dict[int, float] = field(default_factory=dict)  # cores: msg/s

    def net_us(self, cpu: float, idle_cores: float) -> float:
        """µs per message with the idle cores over the burst's window taken off (too low: the
        ticker, most of the idle cost, runs less often while the worker is busy)."""
        return max(cpu - idle_cores * self.burst.handled_seconds, 0.0) / self.burst.messages * 1e6

    def project(self) -> None:
        """msg/s with ecowatch alone on C cores at the burst's CPU per message; single-node capped
        by its main process (one core)."""
        b = self.burst
        cap = 1e6 / b.us(b.main_cpu) if b.main_cpu is not None else math.inf
        for cores in CORES:
            self.projection[cores] = min(cores * 1e6 / b.us(b.app_cpu), cap)

    def broker_cores(self, rate: float) -> float:
        """Cores the broker would need at `rate`, at the burst's CPU per message."""
        return rate * self.burst.us(self.burst.broker_cpu) / 1e6


def measure(system: System, stream: Stream, arrivals: dict[str, float], options: argparse.Namespace) -> Row:
    log(f"[{system.name}] starting")
    started = time.monotonic()
    system.start()
    log(f"[{system.name}] ready after {time.monotonic() - started:.1f} s; warm-up and idle")
    idle = warm_up(system, stream)
    log(f"[{system.name}] burst of {len(stream.burst):,} messages")
    b = burst(system, stream)
    log(
        f"[{system.name}] {b.rate:,.0f} msg/s; paced stream, {options.rate:g} msg/s for {options.seconds:g} s"
    )
    p = paced(system, stream, arrivals, options.rate, options.seconds)
    load_messages = len(stream.warm) + len(stream.burst) + p.messages - len(stream.alarms)
    expected = load_messages * PARAMETERS + len(stream.alarms) * len(readings())
    stored = count_all(system.stores)
    if stored != expected:
        raise RuntimeError(f"{system.name}: the store holds {stored:,} readings, {expected:,} expected")
    row = Row(
        system.name,
        system.workers,
        system.store_layout,
        b,
        p,
        *idle,
        deadletters=system.deadletters(),
        restarts=system.restarts,
    )
    row.project()
    return row


def run_one(
    make: Callable[[Path, Path, Receiver], System], root: Path, stream: Stream, options: argparse.Namespace
) -> Row:
    root.mkdir(parents=True)
    registry = root / "stations.yaml"
    write_registry([*stream.stations, *stream.alarms], registry, note="bench.cluster")
    arrivals: dict[str, float] = {}
    receiver = Receiver("bench")
    events = _Arrivals(arrivals)
    receiver.events = events
    with receiver:
        system = make(root, registry, receiver)
        try:
            row = measure(system, stream, arrivals, options)
        finally:
            system.stop()
    row.notifications, row.repeats = len(events), receiver.repeats
    return row


# --- the report ------------------------------------------------------------------------------------
def report(rows: list[Row], stream: Stream, options: argparse.Namespace) -> str:
    base = next((r for r in rows if r.workers == 0), None)
    head = (
        f"{'':<30} {'burst':>7} {'vs':>6} | {'publish → stored':^17} | {'→ notification':^17} | "
        f"{'CPU µs per message':^19} | {'idle, cores':^13}"
    )
    head2 = (
        f"{'configuration':<30} {'msg/s':>7} {'single':>6} | {'p50':>7} {'p99':>9} | {'p50':>7} {'p99':>9} | "
        f"{'ecowatch':>9} {'broker':>9} | {'ecow.':>6} {'broker':>6}"
    )
    lines = [head, head2, "-" * len(head2)]
    for r in rows:
        b, p = r.burst, r.paced
        ratio = f"{b.rate / base.burst.rate:.2f}" if base is not None else "-"
        lines.append(
            f"{r.name:<30} {b.rate:>7,.0f} {ratio:>6} | "
            f"{percentile(p.stored_ms, 0.5):>4.0f} ms {percentile(p.stored_ms, 0.99):>6.0f} ms | "
            f"{percentile(p.notified_ms, 0.5):>4.0f} ms {percentile(p.notified_ms, 0.99):>6.0f} ms | "
            f"{b.us(b.app_cpu):>9.0f} {b.us(b.broker_cpu):>9.0f} | "
            f"{r.idle_app_cores:>6.2f} {r.idle_broker_cores:>6.2f}"
        )
    lines += [
        "",
        "Projection (not measured): msg/s with ecowatch alone on C cores, one worker per core; in "
        "brackets the cores the broker would need at that rate",
        "",
        f"{'configuration':<30} " + " ".join(f"{f'{c} cores':>16}" for c in CORES),
    ]
    for r in rows:
        cells = [f"{r.projection[c]:,.0f} ({r.broker_cores(r.projection[c]):.1f})" for c in CORES]
        lines.append(f"{r.name:<30} " + " ".join(f"{cell:>16}" for cell in cells))
    lines.append("")
    for r in rows:
        b, p = r.burst, r.paced
        main = f"; main process {b.us(b.main_cpu):.0f} µs/msg" if b.main_cpu is not None else ""
        net_app, net_broker = (
            r.net_us(b.app_cpu, r.idle_app_cores),
            r.net_us(b.broker_cpu, r.idle_broker_cores),
        )
        lines.append(
            f"{r.name} ({r.store}): PUBACKs done after {b.acked_seconds:.1f} s, stored {b.seconds:.1f} s, "
            f"processed {b.handled_seconds:.1f} s{main}; net of idle: ecowatch {net_app:.0f}, "
            f"broker {net_broker:.0f} µs/msg; this process {b.us(b.bench_cpu):.0f} µs/msg; "
            f"at {options.rate:g} msg/s ecowatch {p.app_cores:.2f}, broker {p.broker_cores:.2f} cores; "
            f"{len(p.stored_ms)} stored and {len(p.notified_ms)} notified samples, "
            f"{r.notifications} events notified ({r.repeats} again), {r.deadletters} dead letters"
            + (f", {r.restarts} worker(s) started again after exiting at start-up" if r.restarts else "")
        )
    sizes = f"{len(stream.burst):,} messages x 8 readings from {len(stream.stations)} stations"
    notes = [
        f"burst: {sizes}, as fast as PUBACKed; msg/s to every station's last message stored.",
        f"latencies: {rows[0].paced.messages} messages at {options.rate:g} msg/s with "
        f"{len(stream.alarms)} exceedances in them; stored as seen by a 10 ms poller.",
        "CPU: user + system from /proc, first publish until the burst was processed completely "
        "(single-node: its alert engine caught up; cluster: acknowledged), per message; ecowatch = "
        "the daemon with its decode workers, or the workers; broker = Mosquitto, or the three "
        "nats-server nodes. The machine runs all of it, this process (the publisher) included.",
        "single-node's sink writes a steady stream's readings once its batch is flush_interval (1 s) "
        "old, unless the stream pauses for flush_idle (50 ms): at 50 msg/s (a message every 20 ms) "
        "that batching, not the processing, sets its publish → stored (spread over 0-1 s).",
        "Store: SQLite. Cluster rows share one file (one readings store, as single-node has; "
        "writers take turns on its lock, fsync per batch); 'own files' rows give each worker a "
        "file, which shows what the lock costs but splits the store.",
        "Projection: C x 1e6 / the burst's ecowatch µs per message. That CPU includes the workers' "
        "idle cost (see 'idle, cores': the readers polling their consumers, the lease renewals) at "
        "this run's rate; at higher rates it weighs less per message (towards the 'net of idle' "
        "figure, which takes all of it off and is too low), so the projection errs low and the "
        "broker's cores high. It assumes one worker per core, the NATS nodes on machines of their "
        "own and not the bottleneck, and a store that keeps up. Single-node is capped at 1e6 / its "
        "main process's µs per message (one Python process: receive, logs, sink, alert engine), "
        "whatever the cores. What would bind first: the NATS cluster (the bracketed cores, over "
        "the three nodes), in it the one stations stream, whose Raft leader orders and replicates "
        "every message, and the MQTT listener the stations "
        "connect to; then the store (one SQLite writer at a time; deployments "
        "use InfluxDB).",
    ]
    text = [*lines, "", *(textwrap.fill(note, 110, subsequent_indent="  ") for note in notes)]
    return "\n".join(line.rstrip() for line in text)


def document(
    rows: list[Row], failed: dict[str, str], options: argparse.Namespace, load: tuple[float, float, float]
) -> dict[str, Any]:
    return {
        "failed": failed,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
        "cores": os.cpu_count(),
        "load_average_before": load,
        "rows": [
            {
                **asdict(r),
                "burst_msg_per_s": r.burst.rate,
                "stored_p50_ms": percentile(r.paced.stored_ms, 0.5),
                "stored_p99_ms": percentile(r.paced.stored_ms, 0.99),
                "notified_p50_ms": percentile(r.paced.notified_ms, 0.5),
                "notified_p99_ms": percentile(r.paced.notified_ms, 0.99),
                "ecowatch_us_per_msg": r.burst.us(r.burst.app_cpu),
                "broker_us_per_msg": r.burst.us(r.burst.broker_cpu),
                "main_process_us_per_msg": r.burst.us(r.burst.main_cpu) if r.burst.main_cpu else None,
                "ecowatch_net_us_per_msg": r.net_us(r.burst.app_cpu, r.idle_app_cores),
                "broker_net_us_per_msg": r.net_us(r.burst.broker_cpu, r.idle_broker_cores),
                "broker_cores_at_projection": {c: r.broker_cores(r.projection[c]) for c in CORES},
            }
            for r in rows
        ],
    }


def cluster_of(workers: int, partitions: int, shared: bool) -> Callable[[Path, Path, Receiver], System]:
    def make(tmp: Path, registry: Path, receiver: Receiver) -> System:
        return Cluster(tmp, registry, receiver, workers, partitions, shared)

    return make


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=15_000, help="burst (rounded up to whole rounds)")
    parser.add_argument(
        "--stations", type=int, default=500, help="stations of the burst and the paced stream"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="paced stream, messages/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="paced stream's duration")
    parser.add_argument(
        "--alarms", type=int, default=40, help="exceedances in the paced stream, a station each"
    )
    parser.add_argument("--workers", default="1,2,3", help="cluster sizes, e.g. 1,3")
    parser.add_argument(
        "--per-worker-store", type=int, default=3, help="also W workers with a file each (0: no)"
    )
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--no-single", action="store_true", help="skip single-node mode")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (logs, stores)")
    options = parser.parse_args(argv)
    stream = make_stream(options.messages, options.stations, options.alarms)
    load = os.getloadavg()
    log(
        f"burst {len(stream.burst):,} messages ({len(stream.burst) // options.stations} per station), "
        f"{sum(len(p) for _, p in stream.burst) / len(stream.burst):.0f} B each; load average {load[0]:.2f}"
    )
    makers: list[tuple[str, Callable[[Path, Path, Receiver], System]]] = []
    if not options.no_single:
        makers.append(("single", SingleNode))
    configurations = [(int(w), True) for w in options.workers.split(",") if w.strip()]
    if options.per_worker_store:
        configurations.append((options.per_worker_store, False))
    for size, shared in configurations:
        makers.append(
            (f"cluster-{size}{'' if shared else '-own'}", cluster_of(size, options.partitions, shared))
        )
    rows: list[Row] = []
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ecowatch-bench-cluster-") as scratch:
        root = options.keep or Path(scratch)
        for folder, make in makers:
            # A configuration that fails is reported and the others still run.
            try:
                rows.append(run_one(make, root / folder, stream, options))
            except (Exception, pytest.fail.Exception) as exc:
                failed[folder] = str(exc)
                log(f"[{folder}] FAILED: {exc}")
            if options.json is not None:
                options.json.write_text(json.dumps(document(rows, failed, options, load), indent=2))
    if rows:
        print(report(rows, stream, options))
    for folder, error in failed.items():
        print(f"FAILED {folder}: {error.splitlines()[0] if error else ''}")
    print(f"{os.cpu_count()} cores; load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
