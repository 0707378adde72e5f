"""`ecowatch hj212-gateway`: the HJ 212 TCP gateway on its own, publishing to the MQTT broker.

Accepts data logger connections on the `hj212_gateway:` listener and publishes every packet (good
or bad) and every run of garbage with QoS 1 on `hj212/{MN}` to the broker of the `mqtt:` section,
where the daemon's `hj212/{mn}` subscription decodes, validates, stores or dead-letters them. A
logger that asks for an answer gets 9014 once the broker has acknowledged its packet. MNs and
passwords come from the station registry (`registry:`). SIGTERM or Ctrl-C stops it: the listener
closes, then up to `shutdown_grace` is given to the broker to acknowledge what is in flight.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from config.loader import ConfigError, describe, read_yaml
from config.registry import Registry
from ingest.app.settings import Settings, load_settings
from ingest.sources.hj212_gateway.config import HJ212GatewayConfig
from ingest.sources.hj212_gateway.mqtt import GatewayMqttConfig, MqttHandoff
from ingest.sources.hj212_gateway.server import HJ212Gateway

log = structlog.get_logger(__name__)

COMMAND = "hj212-gateway"
SECTION = "hj212_gateway"
# How long start-up waits for the broker before serving anyway (paho keeps retrying; loggers get
# no answer until it is back, and resend).
_BROKER_WAIT_S = 10.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        COMMAND,
        help="accept HJ 212 data loggers over TCP and publish their packets to MQTT",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default = os.environ.get("ECOWATCH_CONFIG")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path(default) if default else None,
        help="YAML configuration file (default: $ECOWATCH_CONFIG, else built-in defaults).",
    )
    parser.add_argument("--host", default=None, help="Listen address (overrides hj212_gateway.host).")
    parser.add_argument("--port", type=int, default=None, help="Listen port (overrides hj212_gateway.port).")


def load_config(path: Path | None) -> tuple[Settings, HJ212GatewayConfig]:
    """The root settings and the gateway's section; raises ConfigError naming the bad keys."""
    if SECTION in Settings.model_fields:  # once the root settings carry the section
        settings = load_settings(path)
        section = getattr(settings, SECTION)
        return settings, section if isinstance(section, HJ212GatewayConfig) else HJ212GatewayConfig()
    raw = read_yaml(path) if path is not None else {}
    section_raw = raw.pop(SECTION, None) or {}
    settings = load_settings(None, **raw)
    try:
        return settings, HJ212GatewayConfig.model_validate(section_raw)
    except ValidationError as exc:
        source = f"{path}: " if path is not None else ""
        raise ConfigError(f"invalid configuration\n{describe(exc, f'{source}{SECTION}.')}") from None


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve until SIGTERM, SIGINT or `stop` is set; 2 when the configuration or the port is unusable."""
    from ingest.telemetry import configure_logging

    try:
        settings, config = load_config(args.config)
        config = _with_overrides(config, host=args.host, port=args.port)
    except ConfigError as exc:
        print(f"ecowatch: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log.level, settings.log.format)
    try:
        registry = Registry.load(settings.registry)
    except (OSError, ValueError) as exc:
        print(f"ecowatch: cannot load the station registry {settings.registry}: {exc}", file=sys.stderr)
        return 2
    handoff = MqttHandoff(GatewayMqttConfig.from_settings(settings.mqtt, config.mqtt), registry)
    handoff.start()
    if not handoff.wait_connected(_BROKER_WAIT_S):
        log.warning("hj212_handoff_not_connected", host=settings.mqtt.host, port=settings.mqtt.port)
    gateway = HJ212Gateway(config, handoff, registry)
    try:
        gateway.start()
    except OSError as exc:
        print(f"ecowatch: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        handoff.close(timeout=0)
        return 2
    stop = stop if stop is not None else threading.Event()
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("signal_received", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    gateway.stop()
    handoff.close(timeout=settings.shutdown_grace.total_seconds())
    return 0


def _with_overrides(config: HJ212GatewayConfig, **overrides: object) -> HJ212GatewayConfig:
    given = {key: value for key, value in overrides.items() if value is not None}
    if not given:
        return config
    try:
        return HJ212GatewayConfig.model_validate(config.model_dump() | given)
    except ValidationError as exc:
        raise ConfigError(f"invalid command-line option\n{describe(exc, '--')}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """`ecowatch hj212-gateway` without the rest of the CLI (`python -m ingest.sources.hj212_gateway`)."""
    parser = argparse.ArgumentParser(prog="ecowatch")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args([COMMAND, *(sys.argv[1:] if argv is None else argv)]))
