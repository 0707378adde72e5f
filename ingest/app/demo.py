"""`ecowatch demo`: the whole product on embedded defaults, on a machine with no servers.

An embedded MQTT broker (amqtt, MQTT 3.1.1), the daemon writing to the SQLite store, and two
publishers. The simulator publishes the demo registry in real time under the demo scenario
(simulators/scenarios/demo.yaml: a station falling silent, a data link failing, one bad payload
in a hundred; its straight-line spill is left out, the story below tells a spill along the river
network). The story (ingest/app/demo_story.py, simulators/scenarios/demo-incident.yaml) plays the
last 12.5 hours of four Yangtze stations in about a minute: a spill enters upstream, 丰收坝 alerts,
the incident opens with its origin reach and arrival forecast, 寸滩 confirms it, and the incident
thread's signed webhooks land in a receiver the demo runs itself, which plays every river chief,
duty room and intake operator the network names (`notify.receivers`, nothing else routed).
Prints the dashboard's URL first, then the other URLs, and a live summary every few seconds with
the incident and the webhooks as they come.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from config.registry import Registry
from ingest.app.daemon import Daemon
from ingest.app.demo_story import (
    LOCAL,
    STORY_SECONDS,
    DemoReceiver,
    Story,
    story_lines,
)
from ingest.app.embedded_broker import EmbeddedBroker
from ingest.app.settings import DEMO_REGISTRY, load_settings
from ingest.mqtt import PublisherConfig, WindowedPublisher
from ingest.sinks.sqlite import SQLiteSink
from ingest.telemetry import configure_logging
from simulators.load import write_registry
from simulators.scenario import PollutionEvent, Scenario, load_scenario
from simulators.simulator import Simulator

SUMMARY_EVERY_S = 5.0
SCENARIO = Path(__file__).resolve().parents[2] / "simulators" / "scenarios" / "demo.yaml"
# A short run (`--duration`) plays the story in this share of it, so it ends with the story told.
STORY_SHARE_OF_RUN = 0.5
# Seconds between the URLs and the story's start: time to open the dashboard.
STORY_DELAY_S = 2.0


def run_demo(args: argparse.Namespace) -> int:
    # The summary is what a new user reads; the daemon speaks up only for warnings and errors.
    configure_logging("warning", "console")
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    cast = _Cast(data_dir / "stations.yaml")
    broker = EmbeddedBroker(args.mqtt_port)
    try:
        broker.start()
    except OSError as exc:
        print(
            f"ecowatch demo: cannot start the embedded broker on port {args.mqtt_port}: {exc}",
            file=sys.stderr,
        )
        return 2
    receiver = DemoReceiver(() if cast.registry.network is None else cast.registry.network.receiver_names())
    notify: dict[str, Any] = {"receivers": receiver.configs(), "default_receivers": []}
    if args.http_port:
        notify["external_url"] = f"http://127.0.0.1:{args.http_port}"
    settings = load_settings(
        None,
        data_dir=data_dir,
        registry=cast.registry_file,
        mqtt={"port": args.mqtt_port, "protocol": "3.1.1", "client_id": "ecowatch-demo"},
        http={"port": args.http_port},
        notify=notify,
    )
    try:
        with receiver:
            daemon = Daemon(settings, cast.registry)
            daemon.start()
            try:
                _run(args, cast, daemon, receiver)
            finally:
                daemon.stop()
    finally:
        broker.stop()
    print(f"demo stopped; data kept in {data_dir}", flush=True)
    return 0


class _Cast:
    """The demo's stations: the live simulator's, the story's, and the registry the daemon loads."""

    def __init__(self, registry_file: Path) -> None:
        demo = Registry.load(DEMO_REGISTRY)
        self.story = Story.load(demo)
        self.simulator = Simulator(
            demo, _live_scenario(load_scenario(SCENARIO), demo, self.story.station_ids), seed=2026
        )
        # The daemon expects reports as often as the simulators send them, so silence shows in minutes.
        simulated = {s.id: s for s in [*self.simulator.registry_stations(), *self.story.registry_stations()]}
        write_registry(
            [simulated.get(s.id, s) for s in demo.values()],
            registry_file,
            note="Demo registry: illustrative, not official; report intervals shortened for the demo.",
            network=None if demo.network is None else demo.network.spec,
        )
        self.registry_file = registry_file
        self.registry = Registry.load(registry_file)


def _run(args: argparse.Namespace, cast: _Cast, daemon: Daemon, receiver: DemoReceiver) -> None:
    """Publish, print the URLs (the dashboard's first) and a summary every few seconds, until done."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    publishers = [
        WindowedPublisher(PublisherConfig(port=args.mqtt_port, protocol="3.1.1", client_id=client_id))
        for client_id in ("ecowatch-demo-sim", "ecowatch-demo-story")
    ]
    for publisher in publishers:
        publisher.connect()
    stations = len(cast.registry)
    _print_urls(f"http://127.0.0.1:{daemon.http.port}", stations, args)
    duration = timedelta(seconds=args.duration) if args.duration else None
    threads = [
        threading.Thread(
            target=cast.simulator.run_realtime,
            args=(publishers[0], stop),
            kwargs={"speed": 1.0, "duration": duration, "progress": False},
            name="simulator",
            daemon=True,
        ),
        threading.Thread(
            target=_tell,
            args=(cast.story, publishers[1], stop, _story_seconds(args), receiver),
            name="story",
            daemon=True,
        ),
    ]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    deadline = None if args.duration is None else started + args.duration
    told: object = None
    try:
        while not stop.wait(SUMMARY_EVERY_S):
            print(_summary(daemon, time.monotonic() - started, stations), flush=True)
            lines, state = _story(daemon, cast.registry, receiver)
            if state != told and lines:
                print("\n".join(lines), flush=True)
                told = state
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        for publisher in publishers:
            publisher.close(timeout=5)
        lines, _ = _story(daemon, cast.registry, receiver)
        print("\n".join([_summary(daemon, time.monotonic() - started, stations), *lines]), flush=True)


def _print_urls(base: str, stations: int, args: argparse.Namespace) -> None:
    # The dashboard first: it is where the story is seen.
    print(
        f"  dashboard   {base}/\n"
        f"ecowatch demo: {stations} simulated stations"
        f" → embedded broker 127.0.0.1:{args.mqtt_port}"
        f" → daemon → SQLite ({args.data_dir / 'readings.db'})\n"
        f"  incidents   {base}/api/v1/incidents   alerts {base}/api/v1/alerts"
        f"   stations {base}/api/v1/stations\n"
        f"  metrics     {base}/metrics   readiness {base}/readyz   stats {base}/api/v1/stats\n"
        f"  dead letters {base}/api/v1/deadletters   (or: ecowatch deadletter list)\n"
        "Ctrl-C stops the demo.",
        flush=True,
    )


def _live_scenario(scenario: Scenario, registry: Registry, story: frozenset[str]) -> Scenario:
    """The demo scenario without its spills, for every station but the story's."""
    return scenario.model_copy(
        update={
            "events": [e for e in scenario.events if not isinstance(e, PollutionEvent)],
            "stations": [s for s in (scenario.stations or list(registry)) if s not in story],
        }
    )


def _story_seconds(args: argparse.Namespace) -> float:
    """How long the story's history takes to play: `--story-seconds`, within a short `--duration`."""
    seconds = float(getattr(args, "story_seconds", None) or STORY_SECONDS)
    if args.duration:
        seconds = min(seconds, args.duration * STORY_SHARE_OF_RUN)
    return max(seconds, 1.0)


def _tell(
    story: Story, publisher: WindowedPublisher, stop: threading.Event, seconds: float, receiver: DemoReceiver
) -> None:
    if stop.wait(STORY_DELAY_S):
        return
    hours = story.length / timedelta(hours=1)
    print(
        f"story: {story.scenario.description} The {hours:g} h before"
        f" {datetime.now(LOCAL):%H:%M} (Asia/Shanghai) replayed in {seconds:.0f} s; the"
        f" {len(receiver.names)} receivers the river network names listen at {receiver.url('<name>')}",
        flush=True,
    )
    story.play(publisher, stop, seconds=seconds)


def _story(daemon: Daemon, registry: Registry, receiver: DemoReceiver) -> tuple[list[str], object]:
    """The story's summary lines, and what they say (to print them again only when it changed)."""
    incidents = daemon.alerts.api.incident_list(include_closed=True)
    received = receiver.stats()
    lines = story_lines(incidents, registry, received, datetime.now(UTC))
    state = (
        tuple((i["id"], i["status"], len(i["stations"])) for i in incidents),
        received.events,
        received.bad_signatures,
    )
    return lines, state


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
