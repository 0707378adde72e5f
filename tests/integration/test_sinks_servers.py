"""Smoke tests of the real-server launchers in `tests.servers` that the integration tests stand on."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.servers import (
    AlertmanagerServer,
    InfluxDB1Server,
    MissingServerBinaryError,
    MosquittoServer,
    VictoriaMetricsServer,
    free_port,
    http_request,
)

pytestmark = pytest.mark.integration

WAIT_SECONDS = 10.0


def _client(server: MosquittoServer, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect(server.host, server.port)
    client.loop_start()
    return client


def _publish_retained(server: MosquittoServer, topic: str, payload: bytes) -> None:
    client = _client(server, "publisher")
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(WAIT_SECONDS)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def _retained(server: MosquittoServer, topic: str) -> bytes:
    received: list[bytes] = []
    arrived = threading.Event()

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(bytes(message.payload))
        arrived.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="reader")
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.connect(server.host, server.port)
    client.loop_start()
    try:
        assert arrived.wait(WAIT_SECONDS), "no retained message arrived"
    finally:
        client.disconnect()
        client.loop_stop()
    return received[0]


def test_mosquitto_keeps_a_retained_message_across_a_restart(mosquitto: MosquittoServer) -> None:
    """A retained QoS 1 message survives stop/start because the broker can write its persistence file."""
    _publish_retained(mosquitto, "ecowatch/v1/test/retained", b"kept")

    mosquitto.stop()
    mosquitto.check_persisted()
    mosquitto.start()

    assert _retained(mosquitto, "ecowatch/v1/test/retained") == b"kept"


def test_mosquitto_takes_extra_config(tmp_path: Path) -> None:
    """`config_extra` reaches the broker: a second listener from it accepts connections."""
    extra_port = free_port()
    with (
        MosquittoServer(tmp_path, config_extra=f"listener {extra_port} 127.0.0.1") as broker,
        socket.create_connection((broker.host, extra_port), timeout=WAIT_SECONDS),
    ):
        pass


def test_alertmanager_takes_alerts_and_keeps_silences_across_a_restart(
    alertmanager: AlertmanagerServer,
) -> None:
    """Alertmanager lists a posted alert, and a silence survives stop/start in its storage dir."""
    status, _ = http_request(
        "POST",
        f"{alertmanager.url}/api/v2/alerts",
        body=b'[{"labels": {"alertname": "smoke", "station_id": "cq-test"}}]',
        headers={"Content-Type": "application/json"},
    )
    assert status == 200
    assert [a["labels"]["station_id"] for a in alertmanager.alerts()] == ["cq-test"]
    silence_id = alertmanager.create_silence({"station_id": "cq-test"})

    alertmanager.restart()

    assert silence_id in {s["id"] for s in alertmanager.silences()}


def test_influxdb1_with_auth_restarts_with_its_admin(tmp_path: Path) -> None:
    """An auth-enabled InfluxDB comes back after a restart with its admin and databases."""
    with InfluxDB1Server(tmp_path, admin=("admin", "pw")) as influx:
        influx.create_database("ecowatch")
        influx.restart()
        answer = influx.query("SHOW DATABASES")
    assert ["ecowatch"] in answer["results"][0]["series"][0]["values"]


def test_victoria_metrics_keeps_data_across_a_restart(tmp_path: Path) -> None:
    """Samples written before a stop are there after the next start on the same port and dir."""
    with VictoriaMetricsServer(tmp_path) as vm:
        status, _ = http_request("POST", f"{vm.url}/api/v1/import/prometheus", body=b"smoke_total 1\n")
        assert status == 204
        assert vm.series_count() == 1
        port = vm.port
        vm.restart()
        assert vm.port == port
        assert [s["metric"]["__name__"] for s in vm.export('{__name__="smoke_total"}')] == ["smoke_total"]


def test_missing_binary_names_the_debian_package(tmp_path: Path) -> None:
    """A launcher whose binary is absent refuses to start and says which package to install."""

    class Absent(VictoriaMetricsServer):
        binary = Path("/nonexistent/ecowatch-test-binary")
        debian_package = "ecowatch-test-package"

    with pytest.raises(MissingServerBinaryError, match="apt-get install ecowatch-test-package"):
        Absent(tmp_path)
