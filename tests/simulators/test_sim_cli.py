"""`ecowatch simulate`: argument handling, modes and exit statuses."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import orjson
import pytest

from config.registry import Registry
from simulators.cli import add_parser, run
from simulators.publish import read_replay
from tests.servers import MosquittoServer, free_port


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ecowatch")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate", *argv])


def test_a_backfill_to_a_file_writes_every_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A day of backfill at hourly reports writes 24 messages per station and kind, and exits 0."""
    out = tmp_path / "day.tsv"
    status = run(_args("--backfill", "2026-07-01T00:00:00+00:00", "2026-07-02T00:00:00+00:00",
                       "--report-interval", "1h", "--out", str(out), "--no-progress"))  # fmt: skip
    assert status == 0
    kinds = Counter(topic.rsplit("/", 1)[1] for topic, _ in read_replay(out))
    assert kinds == {"water": 24 * 31, "hydro": 24 * 6}
    assert "sent 888, failed 0 of 888" in capsys.readouterr().err


def test_a_named_scenario_runs_accelerated(tmp_path: Path) -> None:
    """`--scenario demo` finds the shipped file; `--speed` with `--duration` runs simulated time faster."""
    out = tmp_path / "demo.tsv"
    status = run(_args("--scenario", "demo", "--speed", "600", "--duration", "2m",
                       "--start", "2026-07-01T08:00:00+08:00", "--out", str(out)))  # fmt: skip
    assert status == 0
    stations = {p.split(b'"')[3] for _, p in read_replay(out) if p.startswith(b'{"station_id":')}
    assert len(stations) == 32


def test_load_mode_writes_the_registry_it_uses(tmp_path: Path) -> None:
    """Load mode beyond the demo registry uses synthetic stations and can save them for the daemon."""
    out, registry = tmp_path / "load.tsv", tmp_path / "load.yaml"
    status = run(_args("--load", "--stations", "50", "--rate", "5000", "--count", "200",
                       "--out", str(out), "--write-registry", str(registry)))  # fmt: skip
    assert status == 0
    messages = list(read_replay(out))
    assert len(messages) == 200
    assert {orjson.loads(p)["station_id"] for _, p in messages} == set(Registry.load(registry))


def test_bad_input_exits_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken scenario, a missing password variable or an unreachable broker exit 2 and say why."""
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: bad\nevents: [{type: silence, station: cq-cj-cuntan, when: 1m}]\n")
    assert run(_args("--scenario", str(scenario), "--out", str(tmp_path / "x"))) == 2
    assert "when" in capsys.readouterr().err
    assert run(_args("--password-env", "ECOWATCH_TEST_UNSET_VARIABLE", "--username", "u")) == 2
    assert "ECOWATCH_TEST_UNSET_VARIABLE" in capsys.readouterr().err


def test_an_unreachable_broker_exits_2(closed_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening on the port: exit 2 naming the connection failure."""
    assert run(_args("--port", str(closed_port), "--duration", "1s")) == 2
    assert "error" in capsys.readouterr().err


def test_publishing_to_mosquitto_from_the_command_line(
    mosquitto: MosquittoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI backfills through a real broker at QoS 1 with MQTT 5 and reports every message sent."""
    status = run(_args("--backfill", "2026-07-01T00:00:00+00:00", "2026-07-01T06:00:00+00:00",
                       "--host", mosquitto.host, "--port", str(mosquitto.port), "--report-interval", "10m",
                       "--format", "hj212"))  # fmt: skip
    assert status == 0
    assert "sent 1116, failed 0 of 1116" in capsys.readouterr().err


def test_publishing_over_websockets_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--transport websockets` reaches a broker's WebSockets listener and delivers every message."""
    ws_port = free_port()
    broker = MosquittoServer(tmp_path, config_extra=f"listener {ws_port} 127.0.0.1\nprotocol websockets\n")
    broker.start()
    try:
        status = run(_args("--backfill", "2026-07-01T00:00:00+00:00", "2026-07-01T01:00:00+00:00",
                           "--port", str(ws_port), "--transport", "websockets", "--report-interval", "30m",
                           "--max-inflight", "10"))  # fmt: skip
    finally:
        broker.stop()
    assert status == 0
    assert "sent 74, failed 0 of 74" in capsys.readouterr().err
