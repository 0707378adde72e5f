"""The HJ 212 gateway against a real Mosquitto: many concurrent loggers, bad ones among them, and the daemon.

Loggers are asyncio clients in the test process; the gateway runs in its own thread with an
`MqttHandoff`; a paho subscriber (a persistent session) collects what reaches the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import structlog
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from config.registry import Registry
from ingest.app.daemon import Daemon
from ingest.app.gateway_cli import add_parser, run
from ingest.app.settings import load_settings
from ingest.decoders.hj212 import Packet, frame, parse_packet
from ingest.sources.hj212_gateway import GatewayMqttConfig, HJ212Gateway, HJ212GatewayConfig, MqttHandoff
from tests.helpers import station
from tests.ingest.hj212_gateway.gateway_support import closes, data_packet, metric, qn_of, wait_until
from tests.servers import MosquittoServer, free_port

pytestmark = pytest.mark.integration

DEADLINE_S = 20.0
LOGGERS = 50
PACKETS = 20
# The loggers take about 0.6 s here; the slow connections must outlast them by a wide margin.
PACKET_TIMEOUT_S = 3.0


class Subscriber:
    """A paho subscriber on `hj212/#` (QoS 1, persistent session) that keeps every message."""

    def __init__(self, server: MosquittoServer) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="hj212-test-subscriber", clean_session=False
        )
        self._client.on_connect = lambda c, *_: c.subscribe("hj212/#", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 1)
        self._client.connect(server.host, server.port)
        self._client.loop_start()
        assert self._subscribed.wait(DEADLINE_S)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def messages(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int) -> list[tuple[str, bytes]]:
        wait_until(lambda: len(self.received) >= count, f"{count} messages on the broker", DEADLINE_S)
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscriber(mosquitto: MosquittoServer) -> Iterator[Subscriber]:
    collector = Subscriber(mosquitto)
    yield collector
    collector.close()


@pytest.fixture
def handoff(mosquitto: MosquittoServer) -> Iterator[MqttHandoff]:
    publisher = MqttHandoff(GatewayMqttConfig(host=mosquitto.host, port=mosquitto.port, max_unacked=100))
    publisher.start()
    assert publisher.wait_connected(DEADLINE_S)
    yield publisher
    publisher.close()


def write_registry(path: Path, stations: dict[str, tuple[str, str | None]]) -> Path:
    """A registry file of stations by id -> (MN, password or None)."""
    entries = [
        {
            "id": station_id,
            "name": f"Station {station_id}",
            "river": "Jialing",
            "basin": "Yangtze",
            "district": "Yuzhong",
            "target_class": "III",
            "lat": 29.5,
            "lon": 106.5,
            "mn": mn,
            **({"hj212_password": password} if password is not None else {}),
        }
        for station_id, (mn, password) in stations.items()
    ]
    path.write_text(yaml.safe_dump({"stations": entries}, allow_unicode=True))
    return path


def registry_of_loggers() -> Registry:
    """Fifty stations `MN-00`..`MN-49`; the even ones have a password."""
    return Registry(
        [
            station(f"st-{i:02d}", mn=f"MN-{i:02d}", hj212_password=f"pw{i:02d}" if i % 2 == 0 else None)
            for i in range(LOGGERS)
        ]
    )


@dataclass
class Plan:
    """What one logger sends, and what it must get back."""

    chunks: list[bytes] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)  # (CN, QN) in order
    stop_and_wait: bool = False


def plan_for(index: int) -> Plan:
    """Loggers 0-39 are good (even: stop-and-wait with answers, odd: pipelined, no answers); 40-49 are bad."""
    mn, pw = f"MN-{index:02d}", f"pw{index:02d}" if index % 2 == 0 else "any"
    plan = Plan(stop_and_wait=index < 40 and index % 2 == 0)
    for n in range(PACKETS):
        seq = index * 100 + n
        want = index % 2 == 0 or index >= 40
        packet = data_packet(mn, pw, seq, want_response=want)
        kind = index // 2 if index >= 40 else None
        if kind == 20 and n % 4 == 0:  # 40, 41: some packets with a wrong password
            packet = data_packet(mn, "wrong!", seq)
            # MN-41 has no password configured, so any PW is right.
            plan.answers.append(("9011" if index % 2 == 0 else "9014", qn_of(packet)))
        elif kind == 21 and n % 3 == 0:  # 42, 43: some packets with a bad CRC
            packet = packet[:-6] + b"FFFF\r\n"
        elif kind == 22:  # 44, 45: garbage between packets
            plan.chunks.append(f"noise-{index}-{n}\r\n".encode())
            plan.answers.append(("9014", qn_of(packet)))
        elif kind == 23:  # 46, 47: an MN the registry lacks
            packet = data_packet(f"MN-X{index}", pw, seq)
        elif kind == 24 and n % 5 == 0:  # 48, 49: malformed packets (no CP)
            packet = frame(f"QN={seq};ST=21;CN=2011;PW={pw};MN={mn};Flag=5")
        elif want:
            plan.answers.append(("9014", qn_of(packet)))
        plan.chunks.append(packet)
    if index in (46, 47):  # one good packet at the end proves the unknown MNs got no answer
        last = data_packet(mn, pw, index * 100 + 99)
        plan.chunks.append(last)
        plan.answers.append(("9014", qn_of(last)))
    return plan


async def read_answers(reader: asyncio.StreamReader, count: int) -> list[Packet]:
    answers = []
    for _ in range(count):
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), DEADLINE_S)
        answers.append(parse_packet(line))
    return answers


async def run_logger(port: int, plan: Plan) -> tuple[list[tuple[str, str]], float]:
    """Send the plan, read its answers; the answers got and the seconds it took."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got: list[tuple[str, str]] = []
    if plan.stop_and_wait:
        for chunk in plan.chunks:
            writer.write(chunk)
            [answer] = await read_answers(reader, 1)
            got.append((answer.cn, answer.qn or ""))
    else:
        writer.write(b"".join(plan.chunks))
        await writer.drain()
        got = [(a.cn, a.qn or "") for a in await read_answers(reader, len(plan.answers))]
    writer.close()
    await writer.wait_closed()
    return got, time.monotonic() - started


async def run_slowloris(port: int, packet: bytes, closed: asyncio.Event) -> float:
    """Trickle a packet a byte every 50 ms until the gateway closes the connection; seconds until then."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for byte in packet:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                    break
            except TimeoutError:
                continue
    except ConnectionError:
        pass
    closed.set()
    writer.close()
    return time.monotonic() - started


async def run_half_open(port: int, part: bytes) -> float:
    """Send part of a packet, then neither send nor close; seconds until the gateway closes."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(part)
    await writer.drain()
    with contextlib.suppress(ConnectionError):
        await asyncio.wait_for(reader.read(), DEADLINE_S)
    writer.close()
    return time.monotonic() - started


def test_fifty_concurrent_loggers_good_and_bad_all_reach_the_broker(
    mosquitto: MosquittoServer, subscriber: Subscriber, handoff: MqttHandoff
) -> None:
    """Every packet and garbage run reaches the broker; every logger gets its answers; slow ones are cut without delaying others."""
    plans = [plan_for(i) for i in range(LOGGERS)]
    slow_packet = data_packet("MN-01", "any", 9999)
    half_open_part = data_packet("MN-03", "any", 9998)[:100]
    garbage_flood = b"Z" * 6000
    config = HJ212GatewayConfig(
        port=0,
        packet_timeout=timedelta(seconds=PACKET_TIMEOUT_S),
        idle_timeout=timedelta(seconds=30),
        # Every logger here is 127.0.0.1: as many loggers behind one NAT, with the three bad ones.
        max_connections_per_peer=LOGGERS + 3,
        # Logger 40 sends a wrong password five times on purpose; its answers are what it pins.
        max_password_failures=PACKETS,
    )
    before = {reason: closes(reason) for reason in ("packet_timeout", "garbage")}
    gateway = HJ212Gateway(config, handoff, registry_of_loggers())
    gateway.start()

    async def scenario() -> tuple[list[Any], float, float]:
        slow_closed = asyncio.Event()
        slow = asyncio.create_task(run_slowloris(gateway.port, slow_packet, slow_closed))
        half_open = asyncio.create_task(run_half_open(gateway.port, half_open_part))
        flood_reader, flood = await asyncio.open_connection("127.0.0.1", gateway.port)
        flood.write(garbage_flood)
        results = await asyncio.gather(*(run_logger(gateway.port, plan) for plan in plans))
        assert not slow_closed.is_set(), "the loggers waited for the slow connection"
        with contextlib.suppress(ConnectionResetError):  # an RST if it closed with bytes unread
            assert await asyncio.wait_for(flood_reader.read(), DEADLINE_S) == b""
        flood.close()
        return list(results), await slow, await half_open

    try:
        results, slow_s, half_open_s = asyncio.run(scenario())
    finally:
        gateway.stop()

    for index, (plan, (got, _seconds)) in enumerate(zip(plans, results, strict=True)):
        assert got == plan.answers, f"logger {index}"
    assert PACKET_TIMEOUT_S * 0.9 < slow_s < PACKET_TIMEOUT_S + 3
    assert PACKET_TIMEOUT_S * 0.9 < half_open_s < PACKET_TIMEOUT_S + 3
    assert closes("packet_timeout") == before["packet_timeout"] + 2
    assert closes("garbage") == before["garbage"] + 1

    expected: Counter[tuple[str, bytes]] = Counter()
    for plan in plans:
        for chunk in plan.chunks:
            if chunk.startswith(b"##"):
                mn = chunk.split(b"MN=")[1].split(b";")[0].decode()
                expected[(f"hj212/{mn}", chunk)] += 1
            else:
                expected[("hj212/_unframed", chunk)] += 1
    expected[("hj212/MN-03", half_open_part)] += 1
    received = subscriber.wait_for(sum(expected.values()) + 2)  # + the slow part and the flood
    wait_until(lambda: handoff.pending == 0, "every PUBACK")
    received_counts = Counter(received)
    assert received_counts & expected == expected  # every packet and run, as many times as sent
    rest = received_counts - expected
    slow_parts = [payload for (_, payload) in rest.elements() if slow_packet.startswith(payload)]
    assert len(slow_parts) == 1
    flood_parts = [payload for (topic, payload) in rest.elements() if topic == "hj212/_unframed"]
    assert 4096 < sum(map(len, flood_parts)) <= len(garbage_flood)
    assert set(b"".join(flood_parts)) == {ord("Z")}
    assert sum(rest.values()) == 1 + len(flood_parts)


def test_the_mqtt_handoff_delivers_in_order_across_a_broker_restart(
    mosquitto: MosquittoServer, subscriber: Subscriber
) -> None:
    """With a small window, messages submitted before, during and after a broker restart all arrive, in order, and are all made durable."""
    handoff = MqttHandoff(GatewayMqttConfig(host=mosquitto.host, port=mosquitto.port, max_unacked=5))
    handoff.start()
    durable: list[int] = []
    lock = threading.Lock()

    def submit(index: int) -> None:
        def on_durable() -> None:
            with lock:
                durable.append(index)

        handoff.submit("hj212/MN-R", f"message {index}".encode(), on_durable)

    try:
        assert handoff.wait_connected(DEADLINE_S)
        for index in range(200):
            submit(index)
        wait_until(lambda: len(durable) == 200, "the first acks")
        mosquitto.stop()
        wait_until(lambda: not handoff.connected, "the handoff to see the broker gone")
        for index in range(200, 300):
            submit(index)
        assert handoff.pending == 100
        mosquitto.start()
        wait_until(lambda: len(durable) == 300, "the acks after the restart")
        for index in range(300, 400):
            submit(index)
        wait_until(lambda: len(durable) == 400, "the acks after the restart")
    finally:
        handoff.close()
    assert handoff.failed == 0
    assert durable == list(range(400))
    sent = [f"message {i}".encode() for i in range(400)]
    wait_until(
        lambda: set(sent) <= {payload for _, payload in subscriber.messages()}, "all 400 on the broker"
    )
    # QoS 1: a message in flight at the stop may come twice; none is lost and the order holds.
    payloads = [payload for topic, payload in subscriber.messages() if topic == "hj212/MN-R"]
    assert list(dict.fromkeys(payloads)) == sent


def test_the_command_serves_loggers_and_publishes_to_the_configured_broker(
    tmp_path: Path, mosquitto: MosquittoServer, subscriber: Subscriber
) -> None:
    """`ecowatch hj212-gateway --config FILE` reads the registry, `mqtt:` and `hj212_gateway:`, and stops cleanly."""
    registry = write_registry(tmp_path / "stations.yaml", {"cli-1": ("MN-CLI", "pw-cli")})
    port = free_port()
    config = tmp_path / "ecowatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "registry": str(registry),
                "log": {"level": "warning"},
                "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
                "hj212_gateway": {"host": "127.0.0.1", "port": port, "mqtt": {"client_id": "gw-cli"}},
            }
        )
    )
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["hj212-gateway", "--config", str(config)])
    stop = threading.Event()
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(run(args, stop)))
    thread.start()
    try:
        wait_until(lambda: _listening(port), "the gateway to listen")
        good = data_packet("MN-CLI", "pw-cli", 1)
        wrong = data_packet("MN-CLI", "nope", 2)
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as sock:
            sock.sendall(good + wrong)
            answers = b""
            while answers.count(b"\r\n") < 2:
                answers += sock.recv(4096)
        first, second = (parse_packet(line + b"\r\n") for line in answers.split(b"\r\n")[:2])
        assert (first.cn, first.qn, second.cn, second.field("QnRtn")) == ("9014", qn_of(good), "9011", "3")
        assert Counter(subscriber.wait_for(2)) == Counter(
            {("hj212/MN-CLI", good): 1, ("hj212/MN-CLI", wrong): 1}
        )
    finally:
        stop.set()
        thread.join(DEADLINE_S)
        structlog.reset_defaults()  # run() configured logging for the process
    assert status == [0]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def test_packets_through_the_gateway_and_the_daemon_land_in_the_database_or_the_dead_letters(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    """Good packets become readings in SQLite; bad CRC, wrong password, unknown MN and garbage become dead letters with their reason."""
    registry_file = write_registry(
        tmp_path / "stations.yaml", {"e2e-a": ("MN-A", "pw-a"), "e2e-b": ("MN-B", None)}
    )
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        mqtt={"port": mosquitto.port, "client_id": "ecowatch-e2e"},
        http={"port": 0},
        registry=registry_file,
    )
    daemon = Daemon(settings)
    daemon.start()
    handoff = MqttHandoff(GatewayMqttConfig(host=mosquitto.host, port=mosquitto.port))
    handoff.start()
    gateway = HJ212Gateway(HJ212GatewayConfig(port=0), handoff, Registry.load(registry_file))
    try:
        assert daemon.source.wait_connected(DEADLINE_S)
        assert handoff.wait_connected(DEADLINE_S)
        gateway.start()
        good = [data_packet("MN-A", "pw-a", i) for i in range(10)] + [
            data_packet("MN-B", "x", i) for i in range(10)
        ]
        flagged = data_packet("MN-B", "x", 50, values={"do": (7.5, "C")})
        bad = {
            "bad_crc": data_packet("MN-A", "pw-a", 60)[:-6] + b"0000\r\n",
            "wrong_password": data_packet("MN-A", "guess", 61),
            "unknown_station": data_packet("MN-NOBODY", "x", 62),
            "malformed": frame("QN=20261125080000063;ST=21;CN=2011;PW=x;MN=MN-B;Flag=5"),
        }

        with socket.create_connection(("127.0.0.1", gateway.port), timeout=DEADLINE_S) as sock:
            sock.sendall(b"".join([*good, flagged, *bad.values()]) + b"just some garbage")
            answers = b""
            while answers.count(b"\r\n") < len(good) + 2:  # 9014 each, 9014 flagged, 9011 wrong password
                answers += sock.recv(4096)
        messages = len(good) + 1 + len(bad) + 1
        wait_until(lambda: daemon.stats()["logs"]["raw_processed"] >= messages, "the daemon to process")
        wait_until(lambda: daemon.stats()["sinks"]["sqlite"]["pending"] == 0, "the sink to catch up")
        sink: Any = daemon.runners[0].sink
        readings_a = sink.query(station_id="e2e-a")
        readings_b = sink.query(station_id="e2e-b")
        assert len(readings_a) == 20  # ph and do of ten packets
        assert len(readings_b) == 21  # ... and the calibration-flagged DO
        assert sum(r.flag.value == "C" for r in readings_b) == 1
        reasons = Counter(letter.reason for letter in daemon.deadletters.list(limit=1000))
        # One letter per reading (ph, do) for wrong password and unknown MN; one per unparseable message.
        assert reasons == Counter({"bad_crc": 1, "wrong_password": 2, "unknown_station": 2, "malformed": 2})
        by_topic = {letter.topic for letter in daemon.deadletters.list(limit=1000)}
        assert {"hj212/MN-A", "hj212/MN-NOBODY", "hj212/_unframed"} <= by_topic
    finally:
        gateway.stop()
        handoff.close()
        daemon.stop()
    assert metric("ecowatch_hj212_packets_total", outcome="wrong_password") >= 1
