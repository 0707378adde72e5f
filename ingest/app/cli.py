"""`ecowatch`: the daemon and its tools, one subcommand each.

ecowatch run            the daemon
ecowatch demo           embedded broker + simulator + daemon on a fresh machine
ecowatch simulate       publish simulated stations, scenarios or load
ecowatch check-config   validate the configuration and print it, secrets masked
ecowatch deadletter     list, show, export and replay rejected messages
ecowatch decode         show what ecowatch makes of raw payloads
ecowatch classify       GB 3838-2002 class of a set of values
ecowatch report         assess sections and regions over a period (JSON, CSV, XLSX, HTML)
ecowatch incidents      follow pollution events along the river network from a CSV of results
ecowatch hj212-gateway  accept HJ 212 data loggers over TCP and publish their packets
ecowatch alerts         list, acknowledge and silence alerts; test a notification receiver
ecowatch cluster status partitions, owners and live workers of the cluster mode
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alerts.assessment_method.source import OpenedStore

CONFIG_HELP = "YAML configuration file (default: $ECOWATCH_CONFIG, else built-in defaults)."


def _cluster_status(args: argparse.Namespace) -> int:
    import json

    from ingest.app.settings import load_settings
    from ingest.cluster import cluster_status

    cluster = load_settings(args.config).cluster
    if cluster is None:
        print("ecowatch cluster: the configuration has no `cluster:` section", file=sys.stderr)
        return 2
    status = cluster_status(cluster.servers, bucket_prefix=cluster.bucket_prefix)
    print(json.dumps(status, indent=2, ensure_ascii=False))
    return 0


def _add_config(parser: argparse.ArgumentParser) -> None:
    import os

    default = os.environ.get("ECOWATCH_CONFIG")
    parser.add_argument(
        "-c", "--config", type=Path, default=Path(default) if default else None, help=CONFIG_HELP
    )


def build_parser() -> argparse.ArgumentParser:
    from alerts import classify_cli
    from alerts.assessment_method import report_cli
    from alerts.incidents import cli as incidents_cli
    from ingest.app import deadletter_cli, decode_cli
    from ingest.app import gateway_cli as hj212_gateway_cli
    from simulators import cli as simulate_cli

    parser = argparse.ArgumentParser(
        prog="ecowatch",
        description="Real-time water-quality monitoring ingestion: MQTT in, validated readings to a "
        "time-series database, GB 3838-2002 alerts out.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the ingestion daemon",
        description="Run the daemon: subscribe to MQTT, log every message durably before acknowledging it, "
        "decode and validate, write to the configured sinks, dead-letter what is rejected. "
        "Serves /metrics, /healthz, /readyz and the API. SIGTERM stops it gracefully.",
    )
    _add_config(run)

    cluster = sub.add_parser(
        "cluster",
        help="cluster mode: partitions, their owners and the live workers",
        description="Print the cluster's partitions, each one's owner and lease epoch, and the live "
        "workers, as JSON, from the JetStream KV buckets of the `cluster:` section.",
    )
    cluster.add_argument("action", choices=["status"], help="what to show")
    _add_config(cluster)

    demo = sub.add_parser(
        "demo",
        help="run the whole product on embedded defaults",
        description="Start an embedded MQTT broker (amqtt), the daemon with the SQLite store, and a "
        "simulator publishing the demo registry in real time with an occasional bad payload, and a "
        "spill followed along the river network, replayed as recent history; print a live summary.",
    )
    demo.add_argument(
        "--story-seconds",
        type=float,
        default=None,
        help="Play the story's 12.5 h of river history in this many seconds "
        "(default 60; at most half of --duration).",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="Stop after this many seconds (default: run until Ctrl-C).",
    )
    demo.add_argument(
        "--data-dir", type=Path, default=Path("var/demo"), help="Where the demo keeps its data."
    )
    demo.add_argument("--mqtt-port", type=int, default=1883, help="Port of the embedded broker.")
    demo.add_argument("--http-port", type=int, default=8080, help="Port of the daemon's HTTP endpoints.")

    check = sub.add_parser(
        "check-config",
        help="validate the configuration and print the effective settings",
        description="Load the YAML file and ECOWATCH_* overrides, validate them and the station "
        "registry, and print the effective configuration as YAML with secrets masked. "
        "Exit 1 on an error, naming the key.",
    )
    _add_config(check)

    simulate_cli.add_parser(sub)
    deadletter_cli.add_parser(sub, _add_config)
    decode_cli.add_parser(sub, _add_config)
    classify_cli.add_parser(sub)
    report_cli.add_parser(sub, _add_config)
    incidents_cli.add_parser(sub)
    hj212_gateway_cli.add_parser(sub)

    from alerts import cli as alerts_cli
    from alerts import notify_cli

    alerts = sub.add_parser(
        "alerts",
        help="list, acknowledge and silence alerts; test a notification receiver",
        description="Operate on the running daemon's alerts through its HTTP API, or send a test "
        "notification to a configured receiver.",
    )
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    alerts_cli.add_parser(alerts_sub)
    notify_cli.add_parser(alerts_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: str = args.command
    if command == "run":
        return _run(args)
    if command == "demo":
        from ingest.app.demo import run_demo

        return run_demo(args)
    if command == "check-config":
        return _check_config(args)
    if command == "cluster":
        return _cluster_status(args)
    if command == "simulate":
        from simulators import cli as simulate_cli

        return simulate_cli.run(args)
    if command == "deadletter":
        from ingest.app import deadletter_cli

        return deadletter_cli.run(args)
    if command == "decode":
        from ingest.app import decode_cli

        return decode_cli.run(args)
    if command == "classify":
        from alerts import classify_cli

        return classify_cli.run(args)
    if command == "report":
        from alerts.assessment_method import report_cli

        return report_cli.run(args, _open_report_store)
    if command == "incidents":
        from alerts.incidents import cli as incidents_cli

        return incidents_cli.run(args)
    if command == "alerts":
        status: int = args.func(args)
        return status
    if command == "hj212-gateway":
        from ingest.app import gateway_cli as hj212_gateway_cli

        return hj212_gateway_cli.run(args)
    raise AssertionError(command)


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from config.loader import ConfigError
    from ingest.app.settings import load_settings

    try:
        return load_settings(args.config)
    except ConfigError as exc:
        print(f"ecowatch: {exc}", file=sys.stderr)
        return None


def _open_report_store(args: argparse.Namespace) -> OpenedStore:
    """`ecowatch report` without `--readings`: the configured registry, store and rules."""
    import yaml

    from alerts.assessment_method.report_cli import StoreConfigError
    from alerts.assessment_method.source import OpenedStore
    from config.loader import ConfigError
    from config.registry import Registry
    from ingest.app.assessment_source import assessment_config, make_source
    from ingest.app.settings import load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        raise StoreConfigError(str(exc)) from None
    registry_file = args.registry or settings.registry
    try:
        registry = Registry.load(registry_file)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # pydantic's ValidationError is a ValueError
        raise StoreConfigError(f"cannot load registry {registry_file}: {exc}") from exc
    config = assessment_config(settings)
    return OpenedStore(registry, make_source(config, settings.effective_sinks()), config.rules)


def _run(args: argparse.Namespace) -> int:
    from ingest.app.cluster_worker import ClusterWorker
    from ingest.app.daemon import Daemon
    from ingest.telemetry import configure_logging

    settings = _load(args)
    if settings is None:
        return 2
    configure_logging(settings.log.level, settings.log.format)
    try:
        # A `cluster:` section makes this process one worker of the cluster mode.
        daemon: Daemon | ClusterWorker = ClusterWorker(settings) if settings.cluster else Daemon(settings)
    except (OSError, ValueError) as exc:
        print(f"ecowatch: cannot start: {exc}", file=sys.stderr)
        return 2
    return daemon.run_forever()


def _check_config(args: argparse.Namespace) -> int:
    import yaml
    from pydantic import ValidationError

    from config.loader import describe
    from config.registry import Registry
    from ingest.wal.jetstream.log import redact_url

    settings = _load(args)
    if settings is None:
        return 1
    try:
        registry = Registry.load(settings.registry)
    except (OSError, ValueError) as exc:
        detail = describe(exc, f"{settings.registry}: ") if isinstance(exc, ValidationError) else str(exc)
        print(f"ecowatch: invalid station registry\n{detail}", file=sys.stderr)
        return 1
    effective = settings.model_dump(mode="json")  # SecretStr dumps as "**********"
    # NATS credentials travel in the server URLs (nats://user:password@host).
    for section in (effective.get("cluster"), (effective.get("wal") or {}).get("jetstream")):
        if section:
            section["servers"] = [redact_url(url) for url in section["servers"]]
    effective["sinks"] = [s.model_dump(mode="json") for s in settings.effective_sinks()]
    print(yaml.safe_dump(effective, allow_unicode=True, sort_keys=False), end="")
    print(f"# registry: {len(registry)} stations from {settings.registry}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
