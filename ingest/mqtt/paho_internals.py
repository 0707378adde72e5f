"""Where ecowatch reaches under paho-mqtt's public API: the socket override and hand-written PUBACKs.

Everything here leans on how paho-mqtt 2.x works inside, so a paho upgrade is checked here first
(tests/ingest/test_source_socket.py pins the behaviour):

- `BufferedClient` overrides paho's private `_create_socket` to wrap the connection in a
  `BufferedSocket`. paho reads a packet in three or more small recv calls; the wrapper reads up to
  256 KiB per recv and serves paho from that buffer, which halves the CPU the receive path spends
  per message (the daemon's ceiling, ARCHITECTURE.md, facts). Its `pending()` tells paho and the source's loop
  that bytes are buffered, as an SSL socket does.
- `puback` writes a PUBACK by hand, so the acknowledgements of a whole group commit leave in one
  write from the committer's thread, through the wrapper's lock (never interleaved with paho's
  packets). paho keeps no state for received QoS 1 messages under `manual_ack`, so a PUBACK
  written here is the same as one written by `Client.ack`.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Final

import paho.mqtt.client as mqtt

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

# Read this much per recv: a few hundred queued messages, so a backlog drains with few syscalls.
RECV_BYTES: Final = 256 * 1024
# Closing: how long the last writes and the wait for the broker's side to close may take.
_CLOSE_TIMEOUT_S: Final = 1.0
_PUBACK_HEADER: Final = bytes((0x40, 0x02))  # PUBACK, remaining length 2: success, no properties


def puback(mid: int) -> bytes:
    """The PUBACK of message id `mid`: success, no properties (valid in MQTT 3.1.1 and 5)."""
    return _PUBACK_HEADER + mid.to_bytes(2, "big")


class BufferedSocket:
    """A paho `SocketLike` that reads in big chunks and serialises writes from two threads.

    `recv(n)` serves from a buffer filled by one large recv of the real socket; `pending()` tells
    paho (and our loop) that bytes are buffered, as an SSL socket does. `send` is thread-safe and
    never short: what the kernel does not take yet is kept, in order, and written by `flush`
    (our loop selects for writability while `wants_write()`); so paho's packets and our acks
    never interleave mid-packet.
    """

    def __init__(self, sock: SocketLike) -> None:
        self._sock = sock
        self._inbox = b""
        self._read_at = 0
        self._outbox = bytearray()
        self._lock = threading.Lock()
        self._closed = False
        # The connection generation whose acks may be written here (set on CONNACK).
        self.generation = -1

    def recv(self, size: int) -> bytes:
        inbox, start = self._inbox, self._read_at
        available = len(inbox) - start
        if not available:
            data = self._sock.recv(RECV_BYTES)
            if len(data) <= size:
                return data
            self._inbox, self._read_at = data, size
            return data[:size]
        if size >= available:
            self._inbox, self._read_at = b"", 0
            return inbox[start:] if start else inbox
        self._read_at = start + size
        return inbox[start : start + size]

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._inbox) - self._read_at + (inner() if inner is not None else 0)

    def send(self, data: bytes | bytearray) -> int:
        with self._lock:
            if self._closed:
                raise OSError("socket closed")
            self._outbox += data
            self._flush_locked()
        return len(data)

    def wants_write(self) -> bool:
        return bool(self._outbox)

    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def _flush_locked(self) -> None:
        while self._outbox:
            try:
                sent = self._sock.send(self._outbox)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            if not sent:
                return  # paho's websocket wrapper: frame partly out, call again when writable
            del self._outbox[:sent]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            # Last acks and DISCONNECT: a short blocking attempt, then give up (the broker
            # redelivers what we did not acknowledge).
            try:
                self._sock.setblocking(True)
                settimeout = getattr(self._sock, "settimeout", None)
                if settimeout is not None:
                    settimeout(_CLOSE_TIMEOUT_S)
                self._flush_locked()
                self._linger()
            except OSError:
                pass
            self._outbox.clear()
        self._sock.close()

    def _linger(self) -> None:
        """Half-close, then read (and drop) until the broker closes its side.

        Closing a socket with unread data in it (the broker keeps publishing until it reads our
        DISCONNECT) sends a TCP reset instead of a FIN, and a broker that sees the reset first
        drops the acks and the DISCONNECT still unread in its buffer: the last messages logged
        before a clean stop would come again after the restart.
        """
        shutdown = getattr(self._sock, "shutdown", None)
        if shutdown is None:  # paho's websocket wrapper
            return
        shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _CLOSE_TIMEOUT_S
        while time.monotonic() < deadline and self._sock.recv(RECV_BYTES):
            pass

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)


class BufferedClient(mqtt.Client):
    """paho's client with its socket wrapped in a `BufferedSocket` (`buffered`, None before connecting)."""

    buffered: BufferedSocket | None = None

    def _create_socket(self) -> SocketLike:
        self.buffered = BufferedSocket(super()._create_socket())
        return self.buffered
