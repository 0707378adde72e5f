"""`ecowatch deadletter`: list, show and export rejections, and replay them after a registry fix,
over TCP or WebSockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import structlog

from config.registry import Registry
from ingest.app.cli import main
from ingest.app.daemon import Daemon
from ingest.app.settings import DEMO_REGISTRY, load_settings
from ingest.mqtt import PublisherConfig, WindowedPublisher
from ingest.telemetry import configure_logging
from simulators.load import write_registry
from tests.helpers import wait_for
from tests.servers import MosquittoServer, free_port

pytestmark = pytest.mark.integration

NEW_STATION = "cq-cj-cuntan"


@pytest.fixture(autouse=True)
def _logs_to_stderr() -> Iterator[None]:
    """The commands' output is stdout; the daemon's logs go to stderr, as in production."""
    configure_logging("info", "json")
    yield
    structlog.reset_defaults()


def test_rejections_are_listed_and_replayed_once_the_registry_knows_the_station(
    tmp_path: Path, mosquitto: MosquittoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Readings of an unregistered station are dead-lettered; once it is added, replay stores them."""
    stations = list(Registry.load(DEMO_REGISTRY).values())
    registry_file = tmp_path / "stations.yaml"
    write_registry([s for s in stations if s.id != NEW_STATION], registry_file, note="without cuntan")
    config = tmp_path / "ecowatch.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\nregistry: {registry_file}\n"
        f"mqtt: {{port: {mosquitto.port}, client_id: replay-test}}\nhttp: {{port: 0}}\n"
    )
    settings = load_settings(config)
    daemon = Daemon(settings)
    daemon.start()
    start = datetime(2026, 11, 20, tzinfo=UTC)
    with WindowedPublisher(PublisherConfig(port=mosquitto.port, client_id="pub")) as publisher:
        for index in range(5):
            ts = (start + timedelta(hours=index)).isoformat()
            doc = {"station_id": NEW_STATION, "ts": ts, "readings": {"ph": 7.2, "nh3n": 0.4}}
            publisher.publish(f"ecowatch/v1/江北区/{NEW_STATION}/water", orjson.dumps(doc))
    wait_for(lambda: daemon.deadletters.count() == 10, "10 dead letters (2 readings x 5 messages)")
    # Each message's payload is stored once, under its two rows.
    assert daemon.deadletters.status()["messages"] == 5
    daemon.stop()

    assert main(["deadletter", "list", "--config", str(config), "--reason", "unknown_station"]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert len(listed) == 10
    assert all("\tunknown_station\t" in line and NEW_STATION in line for line in listed)
    first_id = listed[0].split("\t")[0]
    assert main(["deadletter", "show", first_id, "--config", str(config)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["reason"] == "unknown_station"
    assert json.loads(shown["payload"])["station_id"] == NEW_STATION
    assert main(["deadletter", "export", "--config", str(config)]) == 0
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(exported) == 10

    # The operator adds the station and restarts the daemon, then replays.
    write_registry(stations, registry_file, note="with cuntan")
    daemon = Daemon(load_settings(config))
    daemon.start()
    try:
        assert daemon.source.wait_connected(10)
        assert main(["deadletter", "replay", "--config", str(config)]) == 0
        assert "replayed 5 messages (10 dead letters)" in capsys.readouterr().out
        wait_for(lambda: daemon.stats()["sinks"]["sqlite"]["committed"] == 5, "the 5 replayed messages")
        stored = daemon.runners[0].sink.query(NEW_STATION, None, None, None, 100)  # type: ignore[attr-defined]
        assert len(stored) == 10
        # Replayed rows are kept, marked, and not replayed twice.
        assert all(d.replayed_ns is not None for d in daemon.deadletters.list(limit=100))
        # The counts by reason are totals: the replay that stored the readings takes none back.
        assert daemon.stats()["deadletters"] == {"unknown_station": 10}
        assert main(["deadletter", "replay", "--config", str(config)]) == 0
        assert "replayed 0 messages" in capsys.readouterr().out
    finally:
        daemon.stop()


def test_replay_reaches_a_broker_the_daemon_reaches_over_websockets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `mqtt.transport: websockets` pointing at a WebSockets-only listener, the daemon receives
    over it and replay publishes over it: the dead letters come back and are stored."""
    ws_port = free_port()
    broker = MosquittoServer(
        tmp_path / "broker", config_extra=f"listener {ws_port} 127.0.0.1\nprotocol websockets\n"
    )
    broker.start()
    stations = list(Registry.load(DEMO_REGISTRY).values())
    registry_file = tmp_path / "stations.yaml"
    write_registry([s for s in stations if s.id != NEW_STATION], registry_file, note="without cuntan")
    config = tmp_path / "ecowatch.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\nregistry: {registry_file}\nhttp: {{port: 0}}\n"
        f"mqtt: {{port: {ws_port}, transport: websockets, client_id: replay-ws}}\n"
    )
    daemon = Daemon(load_settings(config))
    daemon.start()
    try:
        assert daemon.source.wait_connected(10)
        start = datetime(2026, 11, 20, tzinfo=UTC)
        with WindowedPublisher(PublisherConfig(port=broker.port, client_id="pub")) as publisher:  # plain TCP
            for index in range(3):
                doc = {"station_id": NEW_STATION, "ts": (start + timedelta(hours=index)).isoformat(),
                       "readings": {"ph": 7.2}}  # fmt: skip
                publisher.publish(f"ecowatch/v1/江北区/{NEW_STATION}/water", orjson.dumps(doc))
        wait_for(lambda: daemon.deadletters.count() == 3, "3 dead letters")
        daemon.stop()

        write_registry(stations, registry_file, note="with cuntan")
        daemon = Daemon(load_settings(config))
        daemon.start()
        assert daemon.source.wait_connected(10)
        assert main(["deadletter", "replay", "--config", str(config)]) == 0
        assert "replayed 3 messages (3 dead letters)" in capsys.readouterr().out
        wait_for(lambda: daemon.stats()["sinks"]["sqlite"]["committed"] == 3, "the 3 replayed messages")
    finally:
        daemon.stop()
        broker.stop()
