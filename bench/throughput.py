"""End-to-end throughput: the daemon against a bare paho-mqtt subscriber, same broker, same stream.

One run starts its own Mosquitto (queues sized for bursts, see ARCHITECTURE.md, facts) and VictoriaMetrics on
loopback, writes a synthetic station registry, pre-generates the stream (default 100 000 messages
of 8 parameters, stations in turn, every message a distinct station and time) and then measures
two receivers, each a subprocess draining a persistent session the broker queued while it was
offline:

1. bare: a paho-mqtt subscriber (QoS 1, persistent session, paho's automatic acks) that only
   counts messages; timed from CONNACK to the last message.
2. daemon: `ecowatch run` with everything it does in production (decode, validate, raw and
   readings logs with fsync, ack after the group commit, the `influxdb` sink writing to
   VictoriaMetrics through `/api/v2/write`, the alert engine); timed from its `mqtt_connected`
   log line until the sink has committed every message.

Both sessions are registered before one publisher fills both queues, so both drain the same
messages; each round publishes the stream again and drains bare, then daemon. For each it prints
messages/s, CPU seconds (user + system of the process and its children, from /proc; the
daemon's also without its start-up, measured on an idle start), peak RSS (VmHWM, summed over the
daemon and its processor worker) and the CPU the broker and the database spent meanwhile; then
the ratio daemon / bare per round and the medians. The target is a ratio of at least 0.8.
Rates vary by +-20 % from run to run on a 2-core machine: compare medians of several rounds.

    .venv/bin/python -m bench.throughput [--messages 100000] [--rounds 3] [--progress]
        [--profile FILE]   # py-spy (pip install py-spy) folded stacks of the first daemon round
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.load import pregenerate, synthetic_registry, write_registry
from simulators.publish import MqttOptions, MqttPublisher
from tests.integration.daemon_process import DaemonProcess, proc_usage
from tests.servers import MosquittoServer, Server, VictoriaMetricsServer

TOPIC_FILTER: Final = "ecowatch/v1/+/+/+"
BARE_CLIENT_ID: Final = "bench-bare"
DAEMON_CLIENT_ID: Final = "bench-daemon"
SESSION_EXPIRY_S: Final = 3600
DRAIN_TIMEOUT_S: Final = 600.0
POLL_S: Final = 0.02
STATS_EVERY_S: Final = 0.25
PROGRESS_EVERY_S: Final = 1.0


@dataclass(frozen=True)
class Result:
    name: str
    messages: int
    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    startup_cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def line(self) -> str:
        drain_cpu = self.cpu_seconds - self.startup_cpu_seconds
        return (
            f"{self.name:<7} {self.rate:>10,.0f} msg/s  {self.seconds:7.2f} s  "
            f"CPU {self.cpu_seconds:6.2f} s (drain {drain_cpu:6.2f} s, "
            f"{drain_cpu / self.messages * 1e6:5.1f} µs/msg)  peak RSS {self.peak_rss_bytes / 2**20:6.1f} MiB"
        )


# --- the bare subscriber (runs as `python -m bench.throughput _bare ...`) ----------------------------
def bare_subscriber(port: int, expect: int, register: bool) -> None:
    """Connect with a persistent session and count messages; print a JSON result on stdout."""
    done = threading.Event()
    state = {"count": 0, "connected_at": 0.0, "last_at": 0.0}

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        state["connected_at"] = time.monotonic()
        if reason.is_failure:
            raise SystemExit(f"refused: {reason}")
        client.subscribe(TOPIC_FILTER, qos=1)

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, _r: Any, _p: Any) -> None:
        if register:
            done.set()

    def on_message(_c: mqtt.Client, _u: Any, _m: mqtt.MQTTMessage) -> None:
        state["count"] += 1
        if state["count"] >= expect:
            state["last_at"] = time.monotonic()
            done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=BARE_CLIENT_ID,
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    properties.ReceiveMaximum = 1000
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    if not done.wait(DRAIN_TIMEOUT_S):
        raise SystemExit(f"bare subscriber got {state['count']} of {expect} messages")
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"count": state["count"], "seconds": state["last_at"] - state["connected_at"]}))


def run_bare(port: int, expect: int, *, register: bool = False) -> Result:
    args = [sys.executable, "-m", "bench.throughput", "_bare", str(port), str(expect)]
    if register:
        args.append("--register")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    cpu, peak = 0.0, 0
    # Sample /proc until the process ends: its last sample is its total (it exits right after);
    # a zombie has no memory figures left, hence the max.
    while process.poll() is None:
        with contextlib.suppress(OSError, IndexError, ValueError):
            sample_cpu, sample_peak = proc_usage(process.pid)
            cpu, peak = max(cpu, sample_cpu), max(peak, sample_peak)
        time.sleep(POLL_S)
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"bare subscriber failed ({process.returncode}): {out}")
    answer = json.loads(out.strip().splitlines()[-1])
    return Result("bare", expect, answer["seconds"], cpu, peak)


# --- the daemon ------------------------------------------------------------------------------------
def daemon_config(mqtt_port: int, vm_url: str, registry: Path, batch_size: int) -> dict[str, Any]:
    return {
        "registry": str(registry),
        "mqtt": {
            "port": mqtt_port,
            "client_id": DAEMON_CLIENT_ID,
            "subscriptions": [
                {
                    "topic": "ecowatch/v1/{district}/{station_id}/{kind}",
                    "format": "json",
                    "tags": {"kind": {"values": ["water"]}},
                }
            ],
        },
        "sinks": [
            {
                "type": "influxdb",
                "name": "vm",
                "url": vm_url,
                "org": "bench",
                "bucket": "water",
                "batch_size": batch_size,
            }
        ],
    }


def committed_offset(daemon: DaemonProcess, log: str, consumer: str) -> int:
    """A consumer's committed offset, from its file (replaced atomically by the daemon)."""
    path = daemon.data_dir / "wal" / log / "offsets" / f"{consumer}.offset"
    try:
        return int(path.read_text().strip() or 0)
    except FileNotFoundError:
        return 0


def register_daemon(daemon: DaemonProcess) -> tuple[float, dict[str, Any]]:
    """Start the daemon once so the broker keeps its session: its start-up CPU seconds, its stats."""
    daemon.start()
    stats = daemon.wait_for(lambda s: s["mqtt_connected"], 30, "connected")
    cpu, _ = proc_usage(daemon.pid)
    if daemon.terminate() != 0:
        raise RuntimeError(f"daemon exited uncleanly\n{daemon.log_tail()}")
    return cpu, stats


def run_daemon(
    daemon: DaemonProcess,
    expect: int,
    base: dict[str, Any],
    startup_cpu: float,
    profile: Path | None,
    progress: bool,
) -> tuple[Result, dict[str, Any]]:
    """Drain `expect` messages more than `base`, the stats the daemon stopped with last time."""
    connects_before = len(daemon.events("mqtt_connected"))
    daemon.start()
    # Start-up grows with the data of earlier rounds (the alert engine reloads its windows):
    # what the daemon spent until /healthz answered is not drain CPU. Take the larger of that
    # and the first start's figure (the drain may already have begun when /healthz answers).
    startup_cpu = max(startup_cpu, proc_usage(daemon.pid)[0])
    profiler = None
    if profile is not None:
        # py-spy (pip install py-spy): folded stacks per thread, for flamegraph.pl or speedscope.
        profiler = subprocess.Popen(
            [
                shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy",
                "record",
                "--pid",
                str(daemon.pid),
                "--rate",
                "250",
                "--threads",
                "--nonblocking",
                "--gil",  # only the thread holding the GIL: what the receive path competes for
                "--subprocesses",  # and the processor worker
                "--format",
                "raw",
                "--output",
                str(profile),
            ],
            stdout=subprocess.DEVNULL,
        )
    usage = (0.0, 0)
    began = time.time()
    shown = [began]
    # When each stage had everything: received and logged, processed, written by the sink.
    stages: dict[str, float] = {}

    raw_base = int(base["logs"]["raw_processed"])
    sink_base = int(base["sinks"]["vm"]["committed"])
    last_stats = [began]

    def done() -> bool:
        # The committed offsets are files: reading them costs the daemon nothing, where polling
        # /api/v1/stats every 20 ms took CPU from it. Stats only for the stages and progress.
        nonlocal usage
        usage = proc_usage(daemon.pid)
        processed = committed_offset(daemon, "raw", "processor") - raw_base
        written = committed_offset(daemon, "readings", "sink.vm") - sink_base
        now = time.time()
        if now - last_stats[0] >= STATS_EVERY_S:
            last_stats[0] = now
            stats = daemon.stats()
            logs = stats["logs"]
            if logs["raw_logged"] - base["logs"]["raw_logged"] >= expect:
                stages.setdefault("logged", now)
            if progress and now - shown[0] >= PROGRESS_EVERY_S:
                shown[0] = now
                print(
                    f"  {now - began:6.2f} s  logged {logs['raw_logged']:>9,}  processed "
                    f"{logs['raw_processed']:>9,}  written {stats['sinks']['vm']['committed']:>9,}  "
                    f"CPU {usage[0]:6.2f} s",
                    flush=True,
                )
        for stage, count in (("processed", processed), ("written", written)):
            if count >= expect:
                stages.setdefault(stage, now)
        # One readings record per message (every message of the stream is valid).
        return processed >= expect and written >= expect

    daemon.poll_until(done, DRAIN_TIMEOUT_S, f"{expect} messages written")
    finished = time.time()
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)
    connected = daemon.events("mqtt_connected")[connects_before]
    started = datetime.fromisoformat(connected["timestamp"]).timestamp()
    behind = daemon.stats()["alerts"]["pending"]
    # The alert engine reads the same readings at its own pace, yielding to ingest during the
    # burst: not part of the timing, but how long it takes to catch up is reported.
    daemon.poll_until(lambda: daemon.stats()["alerts"]["pending"] == 0, DRAIN_TIMEOUT_S, "alerts caught up")
    caught_up = time.time()
    stats = daemon.stats()
    if daemon.terminate() != 0:
        raise RuntimeError(f"daemon exited uncleanly\n{daemon.log_tail()}")
    if stats["deadletters"]:
        raise RuntimeError(f"the daemon dead-lettered readings: {stats['deadletters']}")
    print(
        "         daemon stages: everything "
        + ", ".join(f"{stage} after {at - max(started, began):.2f} s" for stage, at in stages.items())
    )
    print(
        f"         alert engine: {behind:,} readings records behind when the sink finished, "
        f"caught up {caught_up - finished:.1f} s later"
    )
    return Result("daemon", expect, finished - started, usage[0], usage[1], startup_cpu), stats


# --- the run ---------------------------------------------------------------------------------------
def publish(port: int, messages: list[tuple[str, bytes]]) -> float:
    started = time.monotonic()
    with MqttPublisher(MqttOptions(port=port, client_id="bench-publisher", max_unacked=1000)) as publisher:
        for topic, payload in messages:
            publisher.publish(topic, payload)
        if not publisher.flush(DRAIN_TIMEOUT_S) or publisher.failed:
            raise RuntimeError(f"publishing failed: {publisher.failed} not acknowledged")
    return time.monotonic() - started


def run(
    tmp: Path,
    n_messages: int,
    n_stations: int,
    batch_size: int,
    rounds: int = 1,
    profile: Path | None = None,
    progress: bool = False,
) -> list[tuple[Result, Result]]:
    stations = synthetic_registry(n_stations)
    registry = tmp / "registry.yaml"
    write_registry(stations, registry)
    messages = pregenerate(n_messages, stations)
    payload_bytes = sum(len(p) for _, p in messages) / len(messages)
    print(
        f"stream   {n_messages:,} messages x 8 parameters, {n_stations} stations, {payload_bytes:.0f} B each"
    )
    results: list[tuple[Result, Result]] = []
    with MosquittoServer(tmp) as broker, VictoriaMetricsServer(tmp) as vm:
        daemon = DaemonProcess(tmp / "daemon", daemon_config(broker.port, vm.url, registry, batch_size))
        try:
            run_bare(broker.port, 0, register=True)
            startup_cpu, base = register_daemon(daemon)
            for round_number in range(1, rounds + 1):
                # The same stream each round: the database overwrites the same points.
                seconds = publish(broker.port, messages)
                print(f"round {round_number}: published {n_messages / seconds:,.0f} msg/s into both sessions")
                before = _servers_cpu(broker, vm)
                bare = run_bare(broker.port, n_messages)
                print("  " + bare.line())
                middle = _servers_cpu(broker, vm)
                result, base = run_daemon(
                    daemon, n_messages, base, startup_cpu, profile if round_number == 1 else None, progress
                )
                print("  " + result.line())
                after = _servers_cpu(broker, vm)
                print(
                    f"         servers' CPU: mosquitto {middle[0] - before[0]:.2f} s during bare; "
                    f"mosquitto {after[0] - middle[0]:.2f} s, victoria-metrics {after[1] - middle[1]:.2f} s "
                    f"during daemon"
                )
                print(f"         ratio {result.rate / bare.rate:.2f}")
                results.append((bare, result))
        finally:
            daemon.close()
    return results


def _servers_cpu(*servers: Server) -> list[float]:
    return [proc_usage(server.pid)[0] if server.pid is not None else 0.0 for server in servers]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_bare":
        bare_subscriber(int(argv[1]), int(argv[2]), "--register" in argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=20_000, help="the sink's batch size (readings)")
    parser.add_argument("--rounds", type=int, default=3, help="bare and daemon runs, alternating")
    parser.add_argument("--progress", action="store_true", help="print the daemon's stages every second")
    parser.add_argument("--profile", type=Path, help="record the daemon's drain with py-spy into this file")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (logs, data)")
    args = parser.parse_args(argv)
    options = (args.messages, args.stations, args.batch_size, args.rounds, args.profile, args.progress)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = run(args.keep, *options)
    else:
        with tempfile.TemporaryDirectory(prefix="ecowatch-bench-") as tmp:
            results = run(Path(tmp), *options)
    bare = statistics.median(b.rate for b, _ in results)
    daemon = statistics.median(d.rate for _, d in results)
    # Each round times the two back to back, so its own ratio is the paired comparison; the
    # medians of the rates may come from different rounds.
    paired = statistics.median(d.rate / b.rate for b, d in results)
    print(
        f"median of {len(results)}: bare {bare:,.0f} msg/s, daemon {daemon:,.0f} msg/s; "
        f"ratio daemon / bare: {paired:.2f} (median of the rounds' ratios; "
        f"{daemon / bare:.2f} from the median rates) (target >= 0.80)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
