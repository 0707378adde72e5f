"""The MQTT source against a real Mosquitto: auth, TLS, MQTT 3.1.1, persistent sessions, reconnects."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from config.types import TLSConfig
from ingest.app.daemon import Daemon
from ingest.app.settings import load_settings
from ingest.mqtt import PublisherConfig, WindowedPublisher
from tests.helpers import wait_for
from tests.servers import MosquittoServer, free_port

pytestmark = pytest.mark.integration

STATION = "cq-cj-cuntan"
TOPIC = f"ecowatch/v1/江北区/{STATION}/water"


def _message(index: int) -> bytes:
    ts = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=index)
    return orjson.dumps({"station_id": STATION, "ts": ts.isoformat(), "readings": {"ph": 7.0, "do": 8.0}})


def _stored(daemon: Daemon) -> int:
    return int(daemon.stats()["sinks"]["sqlite"]["committed"])


def _publish(options: PublisherConfig, indexes: range) -> None:
    with WindowedPublisher(options) as publisher:
        for index in indexes:
            publisher.publish(TOPIC, _message(index))
        assert publisher.flush(20)
    assert publisher.failed == 0


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def make(**mqtt: Any) -> Daemon:
        settings = load_settings(None, data_dir=tmp_path / "data", mqtt=mqtt, http={"port": 0})
        daemon = Daemon(settings)
        daemon.start()
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.stop()


def _certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    files = {
        name: directory / name
        for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem", "san.ext")
    }
    files["san.ext"].write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(files["ca.key"]),
        "-out",
        str(files["ca.pem"]),
        "-days",
        "2",
        "-subj",
        "/CN=ecowatch-test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(files["server.key"]),
        "-out",
        str(files["server.csr"]),
        "-subj",
        "/CN=127.0.0.1",
    )
    run(
        "x509",
        "-req",
        "-in",
        str(files["server.csr"]),
        "-CA",
        str(files["ca.pem"]),
        "-CAkey",
        str(files["ca.key"]),
        "-CAcreateserial",
        "-out",
        str(files["server.pem"]),
        "-days",
        "2",
        "-extfile",
        str(files["san.ext"]),
    )
    return files


def test_connects_with_username_password_over_tls(
    tmp_path: Path, daemon_factory: Callable[..., Daemon]
) -> None:
    """With TLS (CA file) and credentials the daemon connects and stores what arrives; a wrong
    password is refused with its reason code in the log."""
    certs = _certificates(tmp_path)
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "ecowatch", "s3cret-pw"], check=True)
    tls_port = free_port()
    broker = MosquittoServer(
        tmp_path / "broker",
        config_extra=(
            f"password_file {passwords}\n"
            f"listener {tls_port} 127.0.0.1\ncafile {certs['ca.pem']}\ncertfile {certs['server.pem']}\n"
            f"keyfile {certs['server.key']}\n"
        ),
    )
    broker.config_file.write_text(
        broker.config_file.read_text().replace("allow_anonymous true", "allow_anonymous false")
    )
    broker.start()
    try:
        tls = TLSConfig(ca_file=certs["ca.pem"])
        with capture_logs() as logs:
            refused = daemon_factory(
                port=tls_port, tls=tls, username="ecowatch", password="wrong", client_id="refused"
            )
            wait_for(
                lambda: any(e["event"] == "mqtt_connect_refused" for e in logs), "the refusal to be logged"
            )
        assert not refused.source.connected
        refusal = next(e for e in logs if e["event"] == "mqtt_connect_refused")
        assert "authori" in refusal["reason_code"].lower()
        assert all("wrong" not in str(e) for e in logs)
        refused.stop()

        daemon = daemon_factory(
            port=tls_port, tls=tls, username="ecowatch", password="s3cret-pw", client_id="tls-ok"
        )
        assert daemon.source.wait_connected(10)
        _publish(
            PublisherConfig(
                port=tls_port, tls=tls, username="ecowatch", password="s3cret-pw", client_id="pub"
            ),
            range(20),
        )
        wait_for(lambda: _stored(daemon) == 20, "20 readings stored")
    finally:
        broker.stop()


def test_mqtt311_persistent_session_keeps_what_arrives_while_down(
    mosquitto: MosquittoServer, daemon_factory: Callable[..., Daemon]
) -> None:
    """MQTT 3.1.1 with clean session off: messages published while the daemon is away are delivered."""
    options = {"port": mosquitto.port, "protocol": "3.1.1", "client_id": "ecowatch-311"}
    first = daemon_factory(**options)
    assert first.source.wait_connected(10)
    first.stop()
    _publish(PublisherConfig(port=mosquitto.port, protocol="3.1.1", client_id="pub"), range(50))
    second = daemon_factory(**options)
    wait_for(lambda: _stored(second) == 50, "the 50 queued messages")


def test_reconnects_and_resubscribes_after_a_broker_restart(
    mosquitto: MosquittoServer, daemon_factory: Callable[..., Daemon]
) -> None:
    """After the broker restarts the daemon reconnects on its own, logs both events with reason
    codes and receives new messages."""
    with capture_logs() as logs:
        daemon = daemon_factory(port=mosquitto.port, client_id="ecowatch-restart", reconnect_max_delay="PT1S")
        assert daemon.source.wait_connected(10)
        _publish(PublisherConfig(port=mosquitto.port, client_id="pub"), range(10))
        wait_for(lambda: _stored(daemon) == 10, "the first 10")
        mosquitto.restart()
        wait_for(lambda: any(e["event"] == "mqtt_disconnected" for e in logs), "the disconnect log")
        wait_for(lambda: sum(e["event"] == "mqtt_connected" for e in logs) >= 2, "the reconnect")
        _publish(PublisherConfig(port=mosquitto.port, client_id="pub"), range(10, 30))
        wait_for(lambda: _stored(daemon) == 30, "the next 20")
    assert all("reason_code" in e for e in logs if e["event"] in ("mqtt_connected", "mqtt_disconnected"))
