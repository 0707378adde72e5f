"""Helpers for the HJ 212 gateway tests: an in-memory handoff, a logger client, metric reads."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import REGISTRY

from config.registry import Registry
from ingest.decoders.hj212 import Packet, encode_data_packet, parse_packet
from ingest.sources.hj212_gateway import HJ212Gateway, HJ212GatewayConfig
from ingest.sources.hj212_gateway.handoff import Handoff
from tests.helpers import wait_for

# The old name, until tests/integration/test_hj212_gateway.py imports `tests.helpers.wait_for`.
wait_until = wait_for

DEADLINE_S = 10.0
_SHANGHAI = ZoneInfo("Asia/Shanghai")
# Six hours ago in Beijing: not in the future for validation, whatever the time of day.
DATA_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)


def data_packet(
    mn: str,
    pw: str,
    index: int = 0,
    *,
    want_response: bool = True,
    cn: str = "2011",
    values: dict[str, tuple[float, str]] | None = None,
) -> bytes:
    """An upload with a DataTime unique per `index` (DATA_TIME + index seconds) and a QN from a right clock.

    QN, the logger's clock when it sends, is the wall clock now (to the second) and `index` as the
    milliseconds: unique per index within a test, and within the gateway's clock tolerance.
    """
    data_time = DATA_TIME + timedelta(seconds=index)
    qn = datetime.now(_SHANGHAI).strftime("%Y%m%d%H%M%S") + f"{index % 1000:03d}"
    return encode_data_packet(
        mn,
        pw,
        cn,
        data_time,
        values if values is not None else {"ph": (7.0 + index % 10 / 10, "N"), "do": (8.5, "N")},
        qn=qn,
        want_response=want_response,
    )


def qn_of(packet: bytes) -> str:
    qn = parse_packet(packet).qn
    assert qn is not None
    return qn


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def closes(reason: str) -> float:
    return metric("ecowatch_hj212_connections_closed_total", reason=reason)


class MemoryHandoff:
    """Keeps what it is given; durable at once, or when the test releases it."""

    def __init__(self, *, auto_durable: bool = True) -> None:
        self.auto_durable = auto_durable
        self.messages: list[tuple[str, bytes]] = []
        self.callbacks: list[Callable[[], None]] = []
        self.closed = False
        self._lock = threading.Lock()

    def submit(self, topic: str, payload: bytes, on_durable: Callable[[], None]) -> None:
        with self._lock:
            self.messages.append((topic, payload))
            self.callbacks.append(on_durable)
        if self.auto_durable:
            on_durable()

    def release(self, index: int) -> None:
        """Make message `index` durable."""
        with self._lock:
            callback = self.callbacks[index]
        callback()

    def close(self) -> None:
        self.closed = True

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def topics(self) -> list[str]:
        with self._lock:
            return [topic for topic, _ in self.messages]


class Logger:
    """A data logger's side of a TCP connection, with deadlines on every read."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_packets(self, count: int, timeout: float = DEADLINE_S) -> list[Packet]:
        """The next `count` packets the gateway sends, parsed; fails past the deadline."""
        deadline = time.monotonic() + timeout
        packets: list[Packet] = []
        while len(packets) < count:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                raw, self._buffer = self._buffer[: end + 2], self._buffer[end + 2 :]
                packets.append(parse_packet(raw))
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"got {len(packets)} of {count} packets before the deadline")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed after {len(packets)} of {count} packets")
            self._buffer += chunk
        return packets

    def nothing_sent_within(self, seconds: float) -> bool:
        """True if the gateway sends nothing (and keeps the connection) for `seconds`."""
        if self._buffer:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(4096)
        except TimeoutError:
            return True
        self._buffer += chunk
        return False

    def wait_closed(self, timeout: float = DEADLINE_S) -> float:
        """Seconds until the gateway closed the connection (FIN or RST); fails past the deadline."""
        start = time.monotonic()
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(4096):
                if time.monotonic() - start > timeout:
                    raise AssertionError("the connection is still open")
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError("the connection is still open") from None
        return time.monotonic() - start

    def close(self) -> None:
        self.sock.close()


@contextmanager
def running_gateway(
    handoff: Handoff,
    registry: Registry,
    clock: Callable[[], datetime] | None = None,
    **config: Any,
) -> Iterator[HJ212Gateway]:
    settings = HJ212GatewayConfig.model_validate({"host": "127.0.0.1", "port": 0, **config})
    gateway = (
        HJ212Gateway(settings, handoff, registry)
        if clock is None
        else HJ212Gateway(settings, handoff, registry, clock=clock)
    )
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
