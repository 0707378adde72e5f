"""`ecowatch simulate`: the simulator from the command line.

Three modes: paced (real time, or accelerated with `--speed`), `--backfill START END` as fast as
possible, and `--load` (N stations at a rate). Messages go to an MQTT broker, or with `--out FILE`
to a replay file (`-` for stdout). The password comes from an environment variable, never from
the command line, where `ps` would show it. Exit status: 0 when every message was delivered, 1
when some failed, 2 on bad arguments or an unreachable broker.

Usage:
    ecowatch simulate --scenario demo --report-interval 15s --host 127.0.0.1 --port 1883
    ecowatch simulate --backfill 2026-11-01 2026-11-08 --out week.tsv
    ecowatch simulate --load --stations 1000 --rate 5000 --count 100000 --write-registry load.yaml
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from config import DATA_DIR
from config.registry import Registry, Station
from config.types import TLSConfig
from ingest.mqtt import PublisherConfig, WindowedPublisher
from simulators.formats import FORMATS
from simulators.load import run_load, synthetic_registry, write_registry
from simulators.publish import FilePublisher, Publisher
from simulators.runner import RunSummary
from simulators.scenario import SCENARIO_DIR, Scenario, load_scenario, parse_duration
from simulators.simulator import Simulator

DEFAULT_REGISTRY = DATA_DIR / "stations" / "chongqing-demo.yaml"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the `simulate` subcommand; `run(args)` executes it."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulate monitoring stations publishing readings",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    what = parser.add_argument_group("what to simulate")
    what.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY, help="station registry YAML")
    what.add_argument("--scenario", help=f"scenario file, or the name of one in {SCENARIO_DIR}")
    what.add_argument("--format", choices=sorted(FORMATS), default="json", help="payload format")
    what.add_argument("--seed", type=int, default=0, help="random seed: the same seed sends the same bytes")
    what.add_argument("--report-interval", type=_duration, help="override every station's interval, e.g. 15s")
    when = parser.add_argument_group("time")
    pace = when.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per wall second (1440: a day a minute)"
    )
    pace.add_argument(
        "--backfill", nargs=2, metavar=("START", "END"), type=_instant, help="send a past period at once"
    )
    when.add_argument(
        "--start",
        type=_instant,
        help="simulated start time (default: now, or DURATION ago if faster than real time)",
    )
    when.add_argument(
        "--duration", type=_duration, help="simulated time to run for, e.g. 1h (default: until interrupted)"
    )
    load = parser.add_argument_group("load mode")
    load.add_argument("--load", action="store_true", help="N stations at a target rate instead of a scenario")
    load.add_argument(
        "--stations", type=int, default=100, help="number of stations (synthetic ids beyond the registry)"
    )
    load.add_argument("--rate", type=float, default=1000.0, help="target messages per second")
    load.add_argument("--count", type=int, help="stop after this many messages")
    what.add_argument(
        "--write-registry",
        type=Path,
        help="write the simulated stations, with their intervals, as a registry file",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out", help="write `topic<TAB>payload` lines to this file ('-': stdout) instead of MQTT"
    )
    out.add_argument("--host", default="127.0.0.1")
    out.add_argument("--port", type=int, default=1883)
    out.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    out.add_argument(
        "--transport", choices=["tcp", "websockets"], default="tcp", help="MQTT over TCP or over WebSockets"
    )
    out.add_argument("--qos", type=int, choices=[0, 1], default=1)
    out.add_argument("--client-id", default="", help="MQTT client id")
    out.add_argument("--username")
    out.add_argument("--password-env", metavar="VAR", help="environment variable holding the MQTT password")
    out.add_argument("--tls-ca", type=Path, help="CA bundle; enables TLS")
    out.add_argument("--tls-cert", type=Path, help="client certificate (mutual TLS)")
    out.add_argument("--tls-key", type=Path, help="client key (mutual TLS)")
    out.add_argument("--tls-insecure", action="store_true", help="accept any server certificate (lab use)")
    out.add_argument(
        "--max-inflight",
        dest="max_unacked",
        type=int,
        default=1000,
        help="unacknowledged messages before publishing waits",
    )
    out.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, help="progress bar (default: on a terminal)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute `ecowatch simulate`; returns the exit status."""
    stop = threading.Event()
    try:
        work = _work(args, stop)
        with _publisher(args) as publisher, _stopping_on_signals(stop):
            summary = work(publisher)
    except (ValueError, ValidationError, OSError) as exc:
        print(f"ecowatch simulate: error: {exc}", file=sys.stderr)
        return 2
    print(f"ecowatch simulate: {summary}", file=sys.stderr)
    return 0 if summary.failed == 0 else 1


def _work(args: argparse.Namespace, stop: threading.Event) -> Callable[[Publisher], RunSummary]:
    """The run the arguments ask for, built (and its inputs checked) before any connection is made.

    `--write-registry` saves the stations as the daemon should know them: with the intervals they
    report at, so its silent-station rule expects them as often as they come.
    """
    loaded = Registry.load(args.registry)
    registry = list(loaded.values())
    if args.load:
        stations = _load_stations(args, registry)
        if args.write_registry is not None:
            write_registry(stations, args.write_registry)

        def load(publisher: Publisher) -> RunSummary:
            return run_load(
                publisher, stations, rate=args.rate, count=args.count, duration=args.duration, stop=stop,
                seed=args.seed, format=args.format, progress=args.progress,
            )  # fmt: skip

        return load
    simulator = Simulator(
        loaded,  # with its river network: spills given an origin travel along it
        _scenario(args.scenario),
        seed=args.seed,
        format=args.format,
        report_interval=args.report_interval,
    )
    if args.write_registry is not None:
        network = loaded.network.spec if loaded.network is not None else None
        write_registry(simulator.registry_stations(), args.write_registry, network=network)
    if args.backfill is not None:
        start, end = args.backfill
        if end <= start:
            raise ValueError("--backfill END must be after START")
        return lambda p: simulator.run_backfill(p, start, end, stop=stop, progress=args.progress)
    start = args.start
    if start is None and args.speed > 1 and args.duration is not None:
        # Faster than real time from now would send future timestamps; end the run at now instead.
        start = datetime.now().astimezone() - args.duration
    return lambda p: simulator.run_realtime(
        p, stop, speed=args.speed, start=start, duration=args.duration, progress=args.progress
    )


def _load_stations(args: argparse.Namespace, registry: list[Station]) -> list[Station]:
    """The first N registry stations, or N synthetic ones when the registry has fewer."""
    if args.stations <= len(registry):
        return registry[: args.stations]
    # Each station sends every N / rate seconds; the daemon's registry should expect that.
    return synthetic_registry(args.stations, report_interval_s=max(1, math.ceil(args.stations / args.rate)))


def _scenario(name: str | None) -> Scenario | None:
    if name is None:
        return None
    path = Path(name)
    if not path.exists() and (SCENARIO_DIR / f"{name}.yaml").exists():
        path = SCENARIO_DIR / f"{name}.yaml"
    return load_scenario(path)


@contextmanager
def _publisher(args: argparse.Namespace) -> Iterator[Publisher]:
    if args.out is not None:
        target = sys.stdout if args.out == "-" else Path(args.out)
        with FilePublisher(target) as file_publisher:
            yield file_publisher
        return
    password = None
    if args.password_env is not None:
        if args.password_env not in os.environ:
            raise ValueError(f"--password-env: environment variable {args.password_env} is not set")
        password = SecretStr(os.environ[args.password_env])
    tls = None
    if args.tls_ca or args.tls_cert or args.tls_insecure:
        tls = TLSConfig(
            ca_file=args.tls_ca,
            cert_file=args.tls_cert,
            key_file=args.tls_key,
            insecure_skip_verify=args.tls_insecure,
        )
    config = PublisherConfig(
        host=args.host, port=args.port, protocol=args.protocol, transport=args.transport, qos=args.qos,
        client_id=args.client_id, username=args.username, password=password, tls=tls,
        max_unacked=args.max_unacked,
    )  # fmt: skip
    with WindowedPublisher(config) as mqtt_publisher:
        yield mqtt_publisher


@contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop`, so an interrupted run still flushes and sums up."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 10m, 2h, 1d)") from None


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    # A time without a zone is the local time of this machine, as a user typing it means.
    return value if value.tzinfo is not None else value.astimezone()
