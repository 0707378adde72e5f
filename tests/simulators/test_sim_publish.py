"""Publishers: replay files, and MQTT delivery to a real Mosquitto with a bounded unacknowledged window."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

import simulators.publish
from config.registry import Station
from simulators.publish import FilePublisher, MqttOptions, MqttPublisher, encode_line_payload, read_replay
from simulators.scenario import SCENARIO_DIR, load_scenario
from simulators.simulator import Simulator
from tests.servers import MosquittoServer
from tests.simulators.support import T0

DEADLINE_S = 20.0


def test_a_replay_file_gives_back_every_payload_byte_for_byte(tmp_path: Path) -> None:
    """Text payloads are written as they are, anything else as base64, and all read back unchanged."""
    messages = [
        ("ecowatch/v1/渝中区/a/water", b'{"station_id":"a","ts":"2026-07-01T08:00:00+08:00"}'),
        ("hj212/5000", b"##0010QN=1;ST=21\r\n"),
        ("t/binary", bytes(range(256))),
        ("t/tab", b"a\tb"),
        ("t/lookalike", b"b64:not base64"),
        ("t/empty", b""),
    ]
    path = tmp_path / "replay.tsv"
    with FilePublisher(path) as publisher:
        for topic, payload in messages:
            publisher.publish(topic, payload)
    assert publisher.sent == len(messages)
    assert list(read_replay(path)) == messages
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith('"ts":"2026-07-01T08:00:00+08:00"}')
    assert [line.split("\t")[1].startswith("b64:") for line in lines] == [
        False,
        True,
        True,
        True,
        True,
        False,
    ]
    assert encode_line_payload(b"plain") == "plain"


def test_the_docstring_example_validates() -> None:
    """The `Example:` block of the publish module is valid MQTT options."""
    example = (simulators.publish.__doc__ or "").split("Example:\n", 1)[1]
    options = MqttOptions.model_validate(yaml.safe_load(example))
    assert options.tls is not None
    assert options.port == 8883


class _Subscriber:
    """A paho subscriber that collects every message on the simulator's topics."""

    def __init__(self, server: MosquittoServer) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-test-subscriber")
        self._client.on_connect = lambda c, *_: c.subscribe([("ecowatch/#", 1), ("hj212/#", 1)])
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(server.host, server.port)
        self._client.loop_start()
        assert self._subscribed.wait(DEADLINE_S)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def wait_for(self, count: int) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + DEADLINE_S
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscriber(mosquitto: MosquittoServer) -> Iterator[_Subscriber]:
    collector = _Subscriber(mosquitto)
    yield collector
    collector.close()


@pytest.mark.parametrize(
    ("protocol", "qos", "fmt"), [("5", 1, "json"), ("3.1.1", 1, "hj212"), ("3.1.1", 0, "senml")]
)
def test_every_published_message_reaches_the_broker(
    mosquitto: MosquittoServer,
    subscriber: _Subscriber,
    demo_stations: list[Station],
    protocol: str,
    qos: int,
    fmt: str,
) -> None:
    """A backfill through Mosquitto delivers every message, bad payloads included, and counts them sent."""
    scenario = load_scenario(SCENARIO_DIR / "bad-payloads.yaml")
    simulator = Simulator(demo_stations, scenario, seed=2, format=fmt)
    expected = [(m.topic, m.payload) for m in simulator.iter_messages(T0, T0 + timedelta(minutes=30))]
    options = MqttOptions(
        host=mosquitto.host, port=mosquitto.port, protocol=protocol, qos=qos, max_unacked=50, client_id="sim"
    )
    with MqttPublisher(options) as publisher:
        summary = simulator.run_backfill(publisher, T0, T0 + timedelta(minutes=30), progress=False)
    assert (summary.generated, summary.sent, summary.failed) == (len(expected), len(expected), 0)
    received = subscriber.wait_for(len(expected))
    assert Counter(received) == Counter(expected)


class _SilentBroker:
    """Accepts one MQTT 3.1.1 connection, sends CONNACK, and never acknowledges a publish."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        with conn:
            conn.recv(1024)  # CONNECT
            conn.sendall(bytes([0x20, 0x02, 0x00, 0x00]))  # CONNACK, accepted
            while conn.recv(65536):  # until the client disconnects
                pass

    def close(self) -> None:
        self._thread.join(DEADLINE_S)
        self._listener.close()


def test_publishing_waits_while_the_window_is_full_and_unacked_messages_fail() -> None:
    """With max_unacked unacknowledged, publish blocks; closing counts the unacknowledged as failed."""
    broker = _SilentBroker()
    options = MqttOptions(port=broker.port, protocol="3.1.1", qos=1, max_unacked=5, client_id="sim-window")
    publisher = MqttPublisher(options)
    publisher.connect()
    returned: list[int] = []
    errors: list[BaseException] = []

    def publish_ten() -> None:
        try:
            for i in range(10):
                publisher.publish("t/x", b"%d" % i)
                returned.append(i)
        except RuntimeError as exc:
            errors.append(exc)

    worker = threading.Thread(target=publish_ten)
    worker.start()
    deadline = time.monotonic() + DEADLINE_S
    while len(returned) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.join(timeout=0.3)  # a full window holds the sixth publish
    assert worker.is_alive()
    assert len(returned) == 5
    assert not publisher.flush(timeout=0.1)
    publisher.close(timeout=0.1)
    worker.join(DEADLINE_S)
    assert not worker.is_alive()
    assert (publisher.sent, publisher.failed) == (0, 5)
    assert errors
    assert "closed" in str(errors[0])
    broker.close()


def test_an_unreachable_broker_fails_at_connect(closed_port: int) -> None:
    """Connecting to a port nobody listens on raises at once instead of queueing forever."""
    publisher = MqttPublisher(MqttOptions(port=closed_port))
    with pytest.raises(ConnectionRefusedError):
        publisher.connect()
