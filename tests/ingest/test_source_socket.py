"""The MQTT source's socket wrapper and acknowledgements: big reads, ordered writes, one write per group."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.mqtt.paho_internals import BufferedSocket
from ingest.sources.mqtt import AckToken, MQTTConfig, MQTTSource
from ingest.wal import GroupCommitter, WriteAheadLog


class CountingSocket:
    """A socket end that counts recv and send calls."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.recvs = 0
        self.sends: list[bytes] = []

    def recv(self, size: int) -> bytes:
        self.recvs += 1
        return self.sock.recv(size)

    def send(self, data: bytes | bytearray) -> int:
        self.sends.append(bytes(data))
        return self.sock.send(data)

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)


@pytest.fixture
def pair() -> Iterator[tuple[CountingSocket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield CountingSocket(ours), theirs
    ours.close()
    theirs.close()


def test_small_reads_are_served_from_one_big_recv(pair: tuple[CountingSocket, socket.socket]) -> None:
    """paho's byte-by-byte reads of three packets cost one recv; pending() tells what is buffered."""
    inner, peer = pair
    wrapped = BufferedSocket(inner)
    packets = b"\x30\x05hello" + b"\x30\x03abc" + b"\x30\x02xy"
    peer.sendall(packets)
    got = bytearray()
    for size in (1, 1, 5, 1, 1, 3):
        got += wrapped.recv(size)
    assert wrapped.pending() == 4
    got += wrapped.recv(100)
    assert bytes(got) == packets
    assert wrapped.pending() == 0
    assert inner.recvs == 1
    with pytest.raises(BlockingIOError):
        wrapped.recv(1)


def test_writes_stay_whole_and_in_order_when_the_kernel_takes_only_part(
    pair: tuple[CountingSocket, socket.socket],
) -> None:
    """send() never comes back short: what the kernel refuses is kept, in order, for flush()."""
    inner, peer = pair
    wrapped = BufferedSocket(inner)
    big = bytes(range(256)) * 40_000  # far more than a socket buffer holds
    assert wrapped.send(big) == len(big)
    assert wrapped.wants_write()
    assert wrapped.send(b"\x40\x02\x00\x07") == 4
    received = bytearray()
    peer.settimeout(5.0)
    while len(received) < len(big) + 4:
        received += peer.recv(1 << 20)
        wrapped.flush()
    assert bytes(received) == big + b"\x40\x02\x00\x07"
    assert not wrapped.wants_write()


def test_acks_of_a_group_commit_leave_in_one_write_for_the_current_connection_only(
    tmp_path: Path, pair: tuple[CountingSocket, socket.socket]
) -> None:
    """QoS 1 tokens of the current connection become PUBACKs in one write; older ones and QoS 0 are skipped."""
    inner, peer = pair
    wal = WriteAheadLog(tmp_path / "wal", fsync=False)
    try:
        committer: GroupCommitter[AckToken] = GroupCommitter(wal, lambda _tokens: None)
        source = MQTTSource(MQTTConfig(), committer)
        wrapped = BufferedSocket(inner)
        wrapped.generation = 3
        source._client.buffered = wrapped
        source.on_durable([(3, 1, 1), (2, 5, 1), (3, 258, 1), (3, 9, 0)])
        assert inner.sends == [b"\x40\x02\x00\x01\x40\x02\x01\x02"]
        assert peer.recv(100) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    finally:
        wal.close()


def test_closing_with_unread_data_ends_with_a_fin_not_a_reset() -> None:
    """The broker reads our last acks and DISCONNECT and then a clean end of stream, although it
    was still publishing: a reset could make it drop them unread."""
    listener = socket.create_server(("127.0.0.1", 0))
    ours = socket.create_connection(listener.getsockname())
    broker, _ = listener.accept()
    listener.close()
    try:
        broker.sendall(b"p" * 65536)  # publishes we will never read
        ours.setblocking(False)
        wrapped = BufferedSocket(ours)
        assert select.select([ours], [], [], 5)[0]  # they are in our receive buffer
        wrapped.send(b"acks+DISCONNECT")
        received = b""
        errors: list[OSError] = []

        def read_to_the_end() -> None:
            nonlocal received
            try:
                while chunk := broker.recv(65536):
                    received += chunk
            except OSError as exc:  # ConnectionResetError
                errors.append(exc)
            broker.close()  # as the broker does after DISCONNECT

        reader = threading.Thread(target=read_to_the_end)
        reader.start()
        wrapped.close()
        reader.join(5)
        assert not reader.is_alive()
        assert received == b"acks+DISCONNECT"
        assert errors == []
    finally:
        broker.close()
        ours.close()
