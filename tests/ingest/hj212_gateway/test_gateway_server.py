"""The gateway over real loopback sockets with an in-memory handoff: answers, hand-offs, timeouts, limits."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from structlog.testing import capture_logs

from config.loader import ConfigError
from config.registry import Registry
from ingest.app.gateway_cli import load_config, main
from ingest.decoders.hj212 import encode_packet, frame
from ingest.sources.hj212_gateway import HJ212Gateway, HJ212GatewayConfig
from tests.helpers import station, wait_for
from tests.ingest.hj212_gateway.gateway_support import (
    Logger,
    MemoryHandoff,
    closes,
    data_packet,
    metric,
    qn_of,
    running_gateway,
)

REGISTRY = Registry(
    [
        station("guarded", mn="MN-GUARDED", hj212_password="s3cret"),
        station("open", mn="MN-OPEN"),
    ]
)
# Long enough that a test never trips it by accident, short enough to see when nothing comes.
QUIET_S = 0.3


def test_an_upload_is_answered_with_9014_only_once_durably_handed_off() -> None:
    """The packet goes to `hj212/{MN}` as sent; its 9014 with the packet's QN waits for durability."""
    handoff = MemoryHandoff(auto_durable=False)
    packet = data_packet("MN-GUARDED", "s3cret", 1)
    with running_gateway(handoff, REGISTRY) as gateway:
        logger = Logger(gateway.port)
        logger.send(packet)
        wait_for(lambda: handoff.count() == 1, "the hand-off")
        assert handoff.messages == [("hj212/MN-GUARDED", packet)]
        assert logger.nothing_sent_within(QUIET_S)
        handoff.release(0)
        [answer] = logger.read_packets(1)
        assert (answer.cn, answer.qn, answer.mn, answer.pw) == ("9014", qn_of(packet), "MN-GUARDED", "s3cret")
        logger.close()


def test_answers_go_out_in_packet_order_whatever_order_they_become_durable() -> None:
    """A later packet made durable first is answered only after the earlier one."""
    handoff = MemoryHandoff(auto_durable=False)
    first, second = data_packet("MN-OPEN", "x", 1), data_packet("MN-OPEN", "x", 2)
    with running_gateway(handoff, REGISTRY) as gateway:
        logger = Logger(gateway.port)
        logger.send(first + second)
        wait_for(lambda: handoff.count() == 2, "both hand-offs")
        handoff.release(1)
        assert logger.nothing_sent_within(QUIET_S)
        handoff.release(0)
        answers = logger.read_packets(2)
        assert [a.qn for a in answers] == [qn_of(first), qn_of(second)]
        logger.close()


def test_bad_packets_are_handed_off_and_answered_only_as_the_standard_says() -> None:
    """Bad CRC, unknown MN and malformed packets get no answer, a wrong password 9011 QnRtn=3; all are handed off."""
    good = data_packet("MN-GUARDED", "s3cret", 1)
    bad_crc = data_packet("MN-GUARDED", "s3cret", 2)[:-6] + b"0000\r\n"
    wrong_pw = data_packet("MN-GUARDED", "guess", 3)
    unknown = data_packet("MN-STRANGER", "x", 4)
    malformed = frame("QN=20261125080000005;ST=21;CN=2011;PW=x;MN=MN-OPEN;Flag=5")
    before = {o: metric("ecowatch_hj212_packets_total", outcome=o) for o in ("ok", "bad_crc", "malformed")}
    handoff = MemoryHandoff()
    with running_gateway(handoff, REGISTRY) as gateway:
        logger = Logger(gateway.port)
        logger.send(bad_crc + wrong_pw + unknown + malformed + good)
        refusal, data_response = logger.read_packets(2)
        assert (refusal.cn, refusal.qn, refusal.field("QnRtn")) == ("9011", qn_of(wrong_pw), "3")
        assert (data_response.cn, data_response.qn) == ("9014", qn_of(good))
        assert logger.nothing_sent_within(QUIET_S)
        logger.close()
    assert handoff.messages == [
        ("hj212/MN-GUARDED", bad_crc),
        ("hj212/MN-GUARDED", wrong_pw),
        ("hj212/MN-STRANGER", unknown),
        ("hj212/MN-OPEN", malformed),
        ("hj212/MN-GUARDED", good),
    ]
    assert metric("ecowatch_hj212_packets_total", outcome="ok") == before["ok"] + 1
    assert metric("ecowatch_hj212_packets_total", outcome="bad_crc") == before["bad_crc"] + 1
    assert metric("ecowatch_hj212_packets_total", outcome="malformed") == before["malformed"] + 1


def test_unknown_mns_are_refused_when_configured() -> None:
    """With `unknown_mn: refuse` an unregistered MN gets 9011 QnRtn=2."""
    packet = data_packet("MN-STRANGER", "x", 1)
    with running_gateway(MemoryHandoff(), REGISTRY, unknown_mn="refuse") as gateway:
        logger = Logger(gateway.port)
        logger.send(packet)
        [answer] = logger.read_packets(1)
        assert (answer.cn, answer.field("QnRtn")) == ("9011", "2")
        logger.close()


def test_nothing_is_answered_when_responses_are_off() -> None:
    """`respond: false`: packets are handed off and no logger is ever written to."""
    handoff = MemoryHandoff()
    with running_gateway(handoff, REGISTRY, respond=False) as gateway:
        logger = Logger(gateway.port)
        logger.send(data_packet("MN-OPEN", "x", 1))
        wait_for(lambda: handoff.count() == 1, "the hand-off")
        assert logger.nothing_sent_within(QUIET_S)
        logger.close()


def test_a_time_calibration_request_gets_9013_then_the_platform_clock() -> None:
    """CN 1013 asking for an answer gets 9013 with its QN, then a 1012 setting SystemTime to the injected clock's time in Beijing."""
    request = encode_packet(
        qn="20261125083000000",
        st="21",
        cn="1013",
        pw="s3cret",
        mn="MN-GUARDED",
        flag=5,
        cp=({"PolId": "w01018"},),
    )
    clock: Callable[[], datetime] = lambda: datetime(2026, 11, 25, 0, 30, 15, tzinfo=UTC)  # noqa: E731
    with running_gateway(MemoryHandoff(), REGISTRY, clock=clock) as gateway:
        logger = Logger(gateway.port)
        logger.send(request)
        notified, set_time = logger.read_packets(2)
        assert (notified.cn, notified.qn, notified.flag) == ("9013", "20261125083000000", 4)
        assert (set_time.cn, set_time.flag, set_time.st, set_time.pw) == ("1012", 5, "21", "s3cret")
        assert (set_time.field("PolId"), set_time.field("SystemTime")) == ("w01018", "20261125083015")
        assert set_time.qn == "20261125083015000"
        logger.close()


def test_garbage_is_handed_off_whole_and_a_garbage_sender_is_cut_off() -> None:
    """Garbage runs go to `hj212/_unframed` byte for byte; past `max_garbage_bytes` without a good packet the connection closes."""
    handoff = MemoryHandoff()
    before = closes("garbage")
    noise = bytes(range(256))
    with running_gateway(handoff, REGISTRY, max_garbage_bytes=300) as gateway:
        logger = Logger(gateway.port)
        logger.send(b"hello\x00" + data_packet("MN-OPEN", "x", 1))
        assert logger.read_packets(1)[0].cn == "9014"
        logger.send(noise)
        assert logger.nothing_sent_within(QUIET_S)  # 256 bytes: under the limit, still open
        logger.send(noise)
        logger.wait_closed()
        wait_for(lambda: closes("garbage") == before + 1, "the close to be counted")
    unframed = b"".join(payload for topic, payload in handoff.messages if topic == "hj212/_unframed")
    assert unframed == b"hello\x00" + noise + noise


def test_a_silent_connection_is_closed_at_the_idle_timeout() -> None:
    """A connection that sends nothing (a half-open one looks the same) is closed after `idle_timeout`."""
    before = closes("idle_timeout")
    with running_gateway(MemoryHandoff(), REGISTRY, idle_timeout=0.3) as gateway:
        logger = Logger(gateway.port)
        assert logger.wait_closed() < 5.0
        wait_for(lambda: closes("idle_timeout") == before + 1, "the close to be counted")


def test_a_slow_sender_is_cut_at_the_packet_timeout_without_delaying_others() -> None:
    """A byte-a-tick sender never goes idle but is closed at `packet_timeout`; a busy logger meanwhile is answered at once."""
    before = closes("packet_timeout")
    handoff = MemoryHandoff()
    stop = threading.Event()
    with running_gateway(handoff, REGISTRY, idle_timeout=30, packet_timeout=0.5) as gateway:
        slow = Logger(gateway.port)
        packet = data_packet("MN-OPEN", "x", 99)

        def trickle() -> None:
            for byte in packet:
                if stop.wait(0.05):
                    return
                try:
                    slow.send(bytes([byte]))
                except OSError:
                    return

        trickler = threading.Thread(target=trickle)
        started = time.monotonic()
        trickler.start()
        busy = Logger(gateway.port)
        for index in range(20):
            sent = time.monotonic()
            busy.send(data_packet("MN-OPEN", "x", index))
            assert busy.read_packets(1)[0].cn == "9014"
            assert time.monotonic() - sent < 1.0
        slow.wait_closed()
        assert time.monotonic() - started < 3.0
        stop.set()
        trickler.join()
        wait_for(lambda: closes("packet_timeout") == before + 1, "the close to be counted")
        busy.close()
    parts = [p for _, p in handoff.messages if packet.startswith(p)]
    assert len(parts) == 1  # what arrived before the cut, handed off to be dead-lettered
    assert 0 < len(parts[0]) < len(packet)


def test_a_connection_gone_silent_mid_packet_is_closed_and_its_part_handed_off() -> None:
    """Half a packet and then nothing: closed at `packet_timeout`, the part handed off to be dead-lettered."""
    handoff = MemoryHandoff()
    packet = data_packet("MN-GUARDED", "s3cret", 1)
    with running_gateway(handoff, REGISTRY, idle_timeout=30, packet_timeout=0.3) as gateway:
        logger = Logger(gateway.port)
        logger.send(packet[:80])
        assert logger.wait_closed() < 5.0
        wait_for(lambda: handoff.count() == 1, "the hand-off")
    assert handoff.messages == [("hj212/MN-GUARDED", packet[:80])]


def test_a_peer_that_shuts_its_side_still_gets_the_answers_due() -> None:
    """After the logger's FIN, answers waiting for durability are still written, then the connection ends."""
    handoff = MemoryHandoff(auto_durable=False)
    with running_gateway(handoff, REGISTRY) as gateway:
        logger = Logger(gateway.port)
        logger.send(data_packet("MN-OPEN", "x", 1))
        logger.sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: handoff.count() == 1, "the hand-off")
        handoff.release(0)
        assert logger.read_packets(1)[0].cn == "9014"
        logger.wait_closed()


def test_a_packet_never_made_durable_closes_its_connection() -> None:
    """No durability within `handoff_timeout`: no answer, and the connection closes so the logger resends."""
    before = closes("handoff_timeout")
    with running_gateway(MemoryHandoff(auto_durable=False), REGISTRY, handoff_timeout=0.3) as gateway:
        logger = Logger(gateway.port)
        logger.send(data_packet("MN-OPEN", "x", 1))
        logger.wait_closed()
        wait_for(lambda: closes("handoff_timeout") == before + 1, "the close to be counted")


def test_a_handoff_that_fails_closes_the_connection() -> None:
    """A handoff raising on submit closes the connection with reason handoff_failed, logged."""

    class Broken(MemoryHandoff):
        def submit(self, topic: str, payload: bytes, on_durable: Callable[[], None]) -> None:
            raise RuntimeError("disk on fire")

    with capture_logs() as logs, running_gateway(Broken(), REGISTRY) as gateway:
        logger = Logger(gateway.port)
        logger.send(data_packet("MN-OPEN", "x", 1))
        logger.wait_closed()
        wait_for(lambda: any(e.get("reason") == "handoff_failed" for e in logs), "the close to be logged")
    closed = next(e for e in logs if e["event"] == "hj212_connection_closed")
    assert closed["log_level"] == "warning"
    assert closed["packets"] == 1


def test_connections_past_the_limit_are_closed_at_once() -> None:
    """With `max_connections: 2` a third logger is closed at once and the two others keep working."""
    before = metric("ecowatch_hj212_connections_total", outcome="refused")
    with running_gateway(MemoryHandoff(), REGISTRY, max_connections=2) as gateway:
        first, second = Logger(gateway.port), Logger(gateway.port)
        wait_for(lambda: gateway.connections == 2, "two connections")
        third = Logger(gateway.port)
        assert third.wait_closed() < 2.0
        assert metric("ecowatch_hj212_connections_total", outcome="refused") == before + 1
        for index, logger in enumerate((first, second)):
            logger.send(data_packet("MN-OPEN", "x", index))
            assert logger.read_packets(1)[0].cn == "9014"
            logger.close()


def test_connect_and_disconnect_are_logged_with_the_reason() -> None:
    """Each connection logs `hj212_connection_opened` and `hj212_connection_closed` with peer and reason."""
    with capture_logs() as logs, running_gateway(MemoryHandoff(), REGISTRY) as gateway:
        logger = Logger(gateway.port)
        logger.send(data_packet("MN-OPEN", "x", 1))
        logger.read_packets(1)
        logger.close()
        wait_for(lambda: any(e["event"] == "hj212_connection_closed" for e in logs), "the close log")
    opened = next(e for e in logs if e["event"] == "hj212_connection_opened")
    closed = next(e for e in logs if e["event"] == "hj212_connection_closed")
    assert opened["peer"] == closed["peer"]
    assert (closed["reason"], closed["log_level"], closed["packets"]) == ("peer_closed", "info", 1)
    assert not any("s3cret" in str(e) for e in logs)


def test_stop_closes_every_connection_and_the_listener() -> None:
    """`stop()` ends open connections and frees the port."""
    gateway = HJ212Gateway(HJ212GatewayConfig(port=0), MemoryHandoff(), REGISTRY)
    gateway.start()
    port = gateway.port
    logger = Logger(port)
    wait_for(lambda: gateway.connections == 1, "the connection")
    gateway.stop()
    logger.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2.0)


def test_a_port_in_use_fails_start() -> None:
    """`start()` raises the bind error rather than leaving a gateway that never listens."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = HJ212GatewayConfig(port=taken.getsockname()[1])
        with pytest.raises(OSError, match="address already in use"):
            HJ212Gateway(config, MemoryHandoff(), REGISTRY).start()


def test_the_gateway_section_is_read_beside_the_rest_of_the_configuration(tmp_path: Path) -> None:
    """`hj212_gateway:` in the ecowatch YAML gives the gateway's settings; the rest is the usual Settings."""
    path = tmp_path / "ecowatch.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"host": "127.0.0.1", "port": 11883},
                "hj212_gateway": {"port": 2120, "unknown_mn": "refuse"},
            }
        )
    )
    settings, section = load_config(path)
    assert settings.mqtt.port == 11883
    assert (section.port, section.unknown_mn) == (2120, "refuse")
    path.write_text(yaml.safe_dump({"hj212_gateway": {"port": 2120, "bogus": 1}}))
    with pytest.raises(ConfigError, match=r"hj212_gateway\.bogus"):
        load_config(path)


def test_the_command_exits_2_on_a_bad_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hj212-gateway --config FILE` with a bad gateway key prints the key and exits 2 before listening."""
    path = tmp_path / "ecowatch.yaml"
    path.write_text(yaml.safe_dump({"hj212_gateway": {"idle_timeout": "soon"}}))
    assert main(["--config", str(path)]) == 2
    assert "hj212_gateway.idle_timeout" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
