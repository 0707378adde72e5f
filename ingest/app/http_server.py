"""Connections of the daemon's HTTP server: how many, for how long, how large (the `http` limits).

`GuardedServer` is the stdlib `ThreadingHTTPServer` with a cap on open connections: past
`max_connections` a new one gets a canned 503 from the accepting thread and is closed, so a flood
never starts a thread. `GuardedHandler` reads through `_DeadlineReader`: the request line and headers
must arrive within `header_timeout` of the connection and `max_header_bytes`, the body within
`body_timeout`, however slowly the client trickles bytes (a per-read timeout would let a byte a
second hold a thread for ever). It writes through `_TimedWriter`: a write that makes no progress for
`send_timeout` raises `TimeoutError`, which ends the connection (nginx's `send_timeout`). The server
speaks HTTP/1.0 and closes after every response, so one connection is one request and a body that
is refused unread cannot be mistaken for a second request. A request whose body was left unread is
answered, half-closed, and drained for up to a second (nginx's lingering close), so the client
reads the 413 or 401 instead of a reset.

`stop()` ends the accept loop, shuts the open connections' sockets (their threads see EOF or a
broken pipe at once) and waits briefly for them.
"""

from __future__ import annotations

import contextlib
import io
import math
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final

import structlog

from ingest.app import http_events
from ingest.app.http_config import HTTPConfig
from ingest.app.http_events import Refusal, refused

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

log = structlog.get_logger("ingest.app.http")

# Kernel queue of connections not yet accepted; the stdlib default of 5 drops SYNs on a burst.
LISTEN_BACKLOG: Final = 128
# Lingering close: how long and how much of an unread body to drain so the client sees our answer.
LINGER_S: Final = 1.0
LINGER_BYTES: Final = 2**20
# stop() waits this long for connection threads once their sockets are shut.
STOP_WAIT_S: Final = 1.0
_BUSY_BODY: Final = b'{"error": "too many open connections; retry later"}'
_BUSY: Final = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Cache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
) % (len(_BUSY_BODY), _BUSY_BODY)


class Rejected(Exception):
    """A request refused by a limit or a protocol rule: answered with `status`, then closed.

    Raising one with a `reason` counts it in `ecowatch_http_refused_total`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        reason: Refusal | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers
        if reason is not None:
            refused(reason)


class GuardedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[GuardedHandler], limits: HTTPConfig) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            http_events.connection_limit_reached(self.limits.max_connections)
            _send_busy(request)
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), name="http", daemon=True
        )
        with self._lock:
            self._open[request] = thread
        http_events.connection_opened()
        try:
            thread.start()
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return  # the client went away or timed out: nothing to answer, nobody to tell
        log.error("http_connection_failed", exc_info=True)

    def stop(self) -> None:
        self.shutdown()
        with self._lock:
            open_now = dict(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):  # closed meanwhile
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + STOP_WAIT_S
        for thread in open_now.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        self.server_close()

    def _forget(self, request: socket.socket) -> None:
        with self._lock:
            if self._open.pop(request, None) is None:
                return
        http_events.connection_closed()
        self._slots.release()


class GuardedHandler(BaseHTTPRequestHandler):
    """Reads and writes within the limits; subclasses call `end_of_headers()` and `read_body()`."""

    server: GuardedServer
    server_version = "ecowatch"
    sys_version = ""  # no Python version in the Server header

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def dispatch(self, method: str) -> None:
        raise NotImplementedError

    def setup(self) -> None:
        limits = self.server.limits
        self.connection = self.request
        # Each event of a dashboard stream leaves at once, not after the client's delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self._reader = _DeadlineReader(self.connection)
        self._reader.expect(limits.header_timeout.total_seconds(), Refusal.HEADER_TIMEOUT)
        self._reader.budget = limits.max_header_bytes
        self._body_pending = False
        self.rfile = io.BufferedReader(self._reader)
        self.wfile = _TimedWriter(self.connection, limits.send_timeout.total_seconds())

    def finish(self) -> None:
        super().finish()
        if self._body_pending:
            _drain(self.connection)

    def end_of_headers(self) -> None:
        """The headers are in: refuse them if they were cut at `max_header_bytes`."""
        length = self.headers.get("Content-Length")
        self._body_pending = "Transfer-Encoding" in self.headers or (
            length is not None and length.strip() != "0"
        )
        if self._reader.exhausted:
            self._body_pending = True  # the rest of the headers: drain it so the client reads the 431
            raise Rejected(431, "request headers too large", Refusal.HEADER_TOO_LARGE)
        self._reader.budget = None

    def read_body(self) -> bytes:
        """The body of a POST: one Content-Length within the limit, `application/json`, in time."""
        limits = self.server.limits
        length = self._content_length()
        media_type = (self.headers.get("Content-Type") or "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            if media_type or length:
                raise Rejected(415, "the body must be application/json", Refusal.CONTENT_TYPE)
            raise Rejected(400, "a JSON body is required (Content-Type: application/json)")
        if length > limits.max_body_bytes:
            raise Rejected(413, f"body larger than {limits.max_body_bytes} bytes", Refusal.BODY_TOO_LARGE)
        self._reader.expect(limits.body_timeout.total_seconds(), Refusal.BODY_TIMEOUT)
        try:
            body = self.rfile.read(int(length))
        except TimeoutError:
            self._body_pending = False  # the client stalled: nothing worth draining
            raise Rejected(408, "the body did not arrive in time") from None
        if len(body) < length:
            raise Rejected(400, "the body is shorter than its Content-Length", Refusal.BAD_FRAMING)
        self._body_pending = False
        return body

    def _content_length(self) -> float:
        if "Transfer-Encoding" in self.headers:
            raise Rejected(
                411, "send Content-Length; Transfer-Encoding is not supported", Refusal.BAD_FRAMING
            )
        values = self.headers.get_all("Content-Length") or []
        if len(values) > 1:
            raise Rejected(400, "more than one Content-Length", Refusal.BAD_FRAMING)
        text = values[0].strip(" \t") if values else "0"
        if not (text.isascii() and text.isdigit()):
            raise Rejected(400, "Content-Length must be a non-negative integer", Refusal.BAD_FRAMING)
        # More digits than any limit: too large, without converting a string of any length.
        return int(text) if len(text) <= 18 else math.inf

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are counted by Prometheus, not logged one by one


class _DeadlineReader(io.RawIOBase):
    """Socket reads that fail once a deadline passes, and stop (EOF) after `budget` bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._deadline = math.inf
        self._on_timeout = Refusal.HEADER_TIMEOUT
        self.budget: int | None = None
        self.exhausted = False

    def expect(self, seconds: float, on_timeout: Refusal) -> None:
        """Everything read from now on must arrive within `seconds`."""
        self._deadline = time.monotonic() + seconds
        self._on_timeout = on_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self.budget is not None:
            if self.budget <= 0:
                self.exhausted = True
                return 0
            view = view[: self.budget]
        try:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("read deadline passed")
            self._sock.settimeout(remaining)
            count = self._sock.recv_into(view)
        except TimeoutError:
            refused(self._on_timeout)
            raise
        if self.budget is not None:
            self.budget -= count
        return count


class _TimedWriter(io.BufferedIOBase):
    """Socket writes that fail when the peer accepts nothing for `timeout` seconds."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._timeout = timeout

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            self._sock.settimeout(self._timeout)
            try:
                sent = self._sock.send(view)
            except TimeoutError:
                refused(Refusal.SEND_TIMEOUT)
                raise
            view = view[sent:]
        return size


def _send_busy(sock: socket.socket) -> None:
    try:
        sock.setblocking(False)
        sock.send(_BUSY)  # a fresh socket's send buffer is empty: this never blocks
        # Unread input makes close() send a reset, which may overtake the answer: take what came.
        sock.recv(65536)
    except OSError:
        pass


def _drain(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_S
        drained = 0
        while drained < LINGER_BYTES and (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                return
            drained += len(chunk)
    except OSError:
        pass  # reset, timed out: the client had its chance
