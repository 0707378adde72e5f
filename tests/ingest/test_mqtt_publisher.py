"""The one windowed publisher against a real Mosquitto: WebSockets, order, refusals, bad credentials."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from ingest.mqtt import BrokerConnection, PublisherConfig, PublishObserver, WindowedPublisher
from tests.helpers import wait_for
from tests.servers import MosquittoServer, free_port

pytestmark = pytest.mark.integration


class Collector:
    """A paho subscriber over TCP that keeps every message on `t/#`, in arrival order."""

    def __init__(self, broker: MosquittoServer) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="collector")
        self._client.on_connect = lambda c, *_: c.subscribe("t/#", qos=1)
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert subscribed.wait(20)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def messages(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Seen(PublishObserver):
    """Notes what the publisher reports."""

    def __init__(self) -> None:
        self.refusals: list[str] = []
        self.connects = 0

    def connected(self, config: BrokerConnection) -> None:
        self.connects += 1

    def refused(self, mid: int, reason: str) -> None:
        self.refusals.append(reason)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[MosquittoServer, int]]:
    """Mosquitto on TCP and on a WebSockets port; anonymous clients may publish on `t/ok/#` only."""
    acl = tmp_path / "acl"
    acl.write_text("topic write t/ok/#\ntopic read #\n")
    ws_port = free_port()
    server = MosquittoServer(
        tmp_path, config_extra=f"acl_file {acl}\nlistener {ws_port} 127.0.0.1\nprotocol websockets\n"
    )
    server.start()
    yield server, ws_port
    server.stop()


def test_over_websockets_every_message_arrives_in_order_through_a_small_window(
    broker: tuple[MosquittoServer, int],
) -> None:
    """With `transport: websockets` and a window of 8, 300 submitted messages arrive in order, each made
    durable once, in order."""
    server, ws_port = broker
    collector = Collector(server)
    durable: list[int] = []
    publisher = WindowedPublisher(
        PublisherConfig(port=ws_port, transport="websockets", client_id="ws-pub", max_unacked=8)
    )
    try:
        publisher.connect()
        for index in range(300):
            publisher.submit("t/ok/ws", b"%d" % index, partial(durable.append, index))
        assert publisher.flush(20)
        wait_for(lambda: len(collector.messages()) == 300, "300 messages at the subscriber")
    finally:
        publisher.close()
        collector.close()
    assert collector.messages() == [("t/ok/ws", b"%d" % i) for i in range(300)]
    assert durable == list(range(300))
    assert (publisher.sent, publisher.failed, publisher.pending) == (300, 0, 0)


def test_a_message_the_broker_refuses_is_failed_and_never_durable(
    broker: tuple[MosquittoServer, int],
) -> None:
    """An MQTT 5 PUBACK of 0x87 (not authorised) counts the message failed and skips its callback;
    the messages around it go through."""
    server, _ws_port = broker
    seen = Seen()
    durable: list[str] = []
    with WindowedPublisher(
        PublisherConfig(port=server.port, client_id="acl-pub", max_unacked=2), seen
    ) as publisher:
        for topic in ("t/ok/1", "t/denied", "t/ok/2"):
            publisher.submit(topic, b"x", partial(durable.append, topic))
        assert publisher.flush(20)
    assert durable == ["t/ok/1", "t/ok/2"]
    assert (publisher.sent, publisher.failed) == (2, 1)
    assert seen.connects == 1
    assert len(seen.refusals) == 1
    assert "authori" in seen.refusals[0].lower()


def test_connect_with_a_wrong_password_raises_naming_the_refusal(tmp_path: Path) -> None:
    """`connect()` fails at once with the broker's reason code instead of queueing forever."""
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "sim", "right"], check=True)
    server = MosquittoServer(tmp_path, config_extra=f"password_file {passwords}\n")
    server.config_file.write_text(
        server.config_file.read_text().replace("allow_anonymous true", "allow_anonymous false")
    )
    server.start()
    try:
        config = PublisherConfig(port=server.port, username="sim", password=SecretStr("wrong"))
        with pytest.raises(ConnectionError, match=r"(?i)not authori"):
            WindowedPublisher(config).connect()
        with WindowedPublisher(config.model_copy(update={"password": SecretStr("right")})) as publisher:
            publisher.publish("t/ok/auth", b"x")
            assert publisher.flush(20)
        assert publisher.sent == 1
    finally:
        server.stop()
