"""`ecowatch demo`: the whole product on embedded defaults, on a machine with no servers.

An embedded MQTT broker (amqtt, MQTT 3.1.1), the daemon writing to the SQLite store, and the
simulator publishing the demo registry in real time under the demo scenario (a spill on the
Jialing river, a station falling silent, a maintenance window, one bad payload in a hundred).
Prints the URLs to look at and a live summary every few seconds.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from config.registry import Registry
from ingest.app.daemon import Daemon
from ingest.app.embedded_broker import EmbeddedBroker
from ingest.app.settings import DEMO_REGISTRY, load_settings
from ingest.mqtt import PublisherConfig, WindowedPublisher
from ingest.sinks.sqlite import SQLiteSink
from ingest.telemetry import configure_logging

SUMMARY_EVERY_S = 5.0
SCENARIO = Path(__file__).resolve().parents[2] / "simulators" / "scenarios" / "demo.yaml"


def run_demo(args: argparse.Namespace) -> int:
    from simulators.load import write_registry
    from simulators.scenario import load_scenario
    from simulators.simulator import Simulator

    # The summary is what a new user reads; the daemon speaks up only for warnings and errors.
    configure_logging("warning", "console")
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    simulator = Simulator(Registry.load(DEMO_REGISTRY), load_scenario(SCENARIO), seed=2026)
    # The daemon expects reports as often as the simulator sends them, so silence shows in minutes.
    registry_file = data_dir / "stations.yaml"
    write_registry(
        simulator.registry_stations(),
        registry_file,
        note="Demo registry: illustrative, not official; report intervals shortened for the demo.",
    )

    broker = EmbeddedBroker(args.mqtt_port)
    try:
        broker.start()
    except OSError as exc:
        print(
            f"ecowatch demo: cannot start the embedded broker on port {args.mqtt_port}: {exc}",
            file=sys.stderr,
        )
        return 2
    settings = load_settings(
        None,
        data_dir=data_dir,
        registry=registry_file,
        mqtt={"port": args.mqtt_port, "protocol": "3.1.1", "client_id": "ecowatch-demo"},
        http={"port": args.http_port},
    )
    daemon = Daemon(settings)
    daemon.start()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    publisher = WindowedPublisher(
        PublisherConfig(port=args.mqtt_port, protocol="3.1.1", client_id="ecowatch-demo-sim")
    )
    publisher.connect()
    duration = timedelta(seconds=args.duration) if args.duration else None
    sim_thread = threading.Thread(
        target=simulator.run_realtime,
        args=(publisher, stop),
        kwargs={"speed": 1.0, "duration": duration, "progress": False},
        name="simulator",
        daemon=True,
    )
    sim_thread.start()
    base = f"http://127.0.0.1:{daemon.http.port}"
    print(
        f"ecowatch demo: {len(simulator.stations)} simulated stations"
        f" → embedded broker 127.0.0.1:{args.mqtt_port}"
        f" → daemon → SQLite ({data_dir / 'readings.db'})\n"
        f"  metrics     {base}/metrics\n  readiness   {base}/readyz\n  stats       {base}/api/v1/stats\n"
        f"  dead letters {base}/api/v1/deadletters   (or: ecowatch deadletter list)\n"
        f"  alerts      {base}/api/v1/alerts   stations {base}/api/v1/stations\n"
        "Ctrl-C stops the demo.",
        flush=True,
    )
    started = time.monotonic()
    deadline = None if args.duration is None else started + args.duration
    try:
        while not stop.wait(SUMMARY_EVERY_S):
            print(_summary(daemon, time.monotonic() - started, len(simulator.stations)), flush=True)
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        stop.set()
        sim_thread.join(5)
        publisher.close(timeout=5)
        final = _summary(daemon, time.monotonic() - started, len(simulator.stations))
        daemon.stop()
        broker.stop()
    print(f"{final}\ndemo stopped; data kept in {data_dir}", flush=True)
    return 0


def _summary(daemon: Daemon, elapsed: float, stations: int) -> str:
    counters: dict[str, float] = {}
    rejected: dict[str, float] = {}
    stats: dict[str, Any] = daemon.stats()
    for name, value in stats["counters"].items():
        if name.startswith("ecowatch_readings_rejected_total"):
            rejected[name.split("reason=")[1].rstrip("}")] = value
        else:
            counters[name] = value
    sinks = {f"ecowatch_sink_readings_written_total{{sink={r.config.name}}}" for r in daemon.runners}
    # Every sink stores each reading once; show the first one's count (the alert engine is no sink).
    written = max((v for k, v in counters.items() if k in sinks), default=0)
    reporting = "?"
    for runner in daemon.runners:
        if isinstance(runner.sink, SQLiteSink):
            reporting = str(len(runner.sink.latest_by_station()))
    reasons = ", ".join(f"{k} {int(v)}" for k, v in sorted(rejected.items())) or "none"
    received = int(counters.get("ecowatch_messages_received_total", 0))
    alerts: dict[str, int] = daemon.alerts.stats()["alerts"]
    accepted = int(counters.get("ecowatch_readings_accepted_total", 0))
    return (
        f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] received {received}"
        f" · readings accepted {accepted}, stored {int(written)}"
        f" · rejected {int(sum(rejected.values()))} ({reasons}) · stations reporting {reporting}/{stations}"
        f" · alerts firing {alerts.get('firing', 0)}, pending {alerts.get('pending', 0)}"
    )
