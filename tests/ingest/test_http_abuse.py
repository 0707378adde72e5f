"""The HTTP server against hostile clients, over real sockets on 127.0.0.1, with small limits."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from ingest.app.http import HTTPService
from ingest.app.http_config import HTTPConfig
from ingest.routes import EventStream, Request
from tests.helpers import wait_for

TOKEN = "t0ken-for-abuse"
# Long enough that nothing in a healthy exchange on loopback comes near them.
CLIENT_TIMEOUT_S = 10.0


class Streams:
    """A route whose event stream pours 1 MiB chunks until the server closes it."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def open(self, _request: Request) -> tuple[int, Any]:
        return 200, EventStream(self._chunks())

    def _chunks(self) -> Iterator[bytes]:
        try:
            while True:
                yield b"data: " + b"x" * 2**20 + b"\n\n"
        finally:
            self.closed.set()


@contextmanager
def serve(token: str | None = None, **limits: Any) -> Iterator[tuple[HTTPService, Streams]]:
    streams = Streams()
    service = HTTPService(
        "127.0.0.1",
        0,
        {
            ("GET", "/healthz"): lambda _r: (200, {"status": "ok"}),
            ("GET", "/query"): lambda r: (200, {"query": r.query}),
            ("POST", "/echo"): lambda r: (201, {"got": r.body}),
            ("GET", "/stream"): streams.open,
        },
        token=token,
        config=HTTPConfig(**limits),
    )
    service.start()
    try:
        yield service, streams
    finally:
        service.stop()


def connect(service: HTTPService) -> socket.socket:
    return socket.create_connection(("127.0.0.1", service.port), timeout=CLIENT_TIMEOUT_S)


def exchange(service: HTTPService, raw: bytes) -> tuple[int, bytes]:
    """Send `raw` without closing our side, read the answer until the server closes: (status, body)."""
    with connect(service) as sock:
        sock.sendall(raw)
        data = read_to_end(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def request(
    service: HTTPService,
    method: str = "GET",
    path: str = "/healthz",
    headers: dict[str, str | None] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> tuple[int, bytes]:
    sent = {"Host": f"127.0.0.1:{service.port}", **(headers or {})}
    lines = [f"{method} {path} {version}", *(f"{k}: {v}" for k, v in sent.items() if v is not None)]
    return exchange(service, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("ecowatch_http_refused_total", {"reason": reason}) or 0.0


def served(service: HTTPService) -> bool:
    """A plain request gets 200 (a refused or reset connection counts as no)."""
    try:
        return request(service)[0] == 200
    except OSError:
        return False


def cut_by_server(sock: socket.socket) -> bool:
    """The server closed the connection: it is readable and reads as EOF (or a reset)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(65536) == b""
    except OSError:
        return True


@pytest.mark.parametrize(
    ("lengths", "status"),
    [
        (["-1"], 400),
        (["abc"], 400),
        (["1e3"], 400),
        (["+5"], 400),
        (["5, 5"], 400),
        (["2", "5"], 400),
        (["2", "2"], 400),
        (["65537"], 413),
        (["1000000000000"], 413),
        (["9" * 400], 413),
    ],
)
def test_content_length_must_be_one_non_negative_integer_within_the_limit(
    lengths: list[str], status: int
) -> None:
    """Negative, non-numeric, repeated or conflicting lengths are 400, above the limit 413, all at once."""
    with serve() as (service, _):
        headers = "".join(f"Content-Length: {n}\r\n" for n in lengths)
        raw = f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}\r\n{{}}"
        # Our side stays open: an answer proves the server did not read "until the client closes".
        got, body = exchange(service, raw.encode())
    assert got == status
    assert b"error" in body


def test_chunked_bodies_are_refused_with_411() -> None:
    """Transfer-Encoding is not supported: the client is told to send Content-Length."""
    with serve() as (service, _):
        raw = (
            b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        )
        assert exchange(service, raw)[0] == 411


def test_a_body_within_the_limit_is_read_and_a_short_one_refused() -> None:
    """A body exactly at max_body_bytes reaches the handler; a client that closes early gets 400."""
    with serve(max_body_bytes=1024) as (service, _):
        body = b'"' + b"x" * 1022 + b'"'
        status, answer = request(
            service, "POST", "/echo", {"Content-Type": "application/json", "Content-Length": "1024"}, body
        )
        assert status == 201
        assert b"x" * 1022 in answer
        with connect(service) as sock:
            sock.sendall(
                b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            sock.shutdown(socket.SHUT_WR)
            assert read_to_end(sock).startswith(b"HTTP/1.0 400 ")


def test_a_client_trickling_its_headers_is_cut_and_blocks_nobody() -> None:
    """A header byte every 0.1 s never completes; the connection is cut after header_timeout while others are served."""
    before = refusals("header_timeout")
    with serve(header_timeout=timedelta(milliseconds=500)) as (service, _), connect(service) as slow:
        started = time.monotonic()
        trickle = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Padding: abcdefgh\r\n" * 1000
        others_served = False
        for byte in trickle:
            if cut_by_server(slow):
                break
            try:
                slow.send(bytes([byte]))
            except OSError:
                break  # reset by the server
            if not others_served:
                others_served = served(service)
            time.sleep(0.1)  # the slow client's pace, not a wait for the server
        else:
            pytest.fail("the trickling client was never cut")
        held = time.monotonic() - started
    assert others_served
    assert held >= 0.5
    assert refusals("header_timeout") == before + 1


def test_a_client_that_stops_sending_its_body_gets_408() -> None:
    """Headers in time, then half a body and silence: 408 after body_timeout, and the connection ends."""
    before = refusals("body_timeout")
    with serve(body_timeout=timedelta(milliseconds=300)) as (service, _), connect(service) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"a": '
        )
        answer = read_to_end(sock)
    assert answer.startswith(b"HTTP/1.0 408 ")
    assert refusals("body_timeout") == before + 1


def test_headers_beyond_max_header_bytes_are_refused_with_431() -> None:
    """A request whose headers exceed max_header_bytes is answered 431 without reading further."""
    with serve(max_header_bytes=4096) as (service, _):
        status, _ = request(service, headers={f"X-Filler-{i}": "y" * 100 for i in range(60)})
        assert status == 431
        assert request(service, headers={"X-Small": "y" * 1000})[0] == 200


def test_connections_beyond_the_cap_are_refused_until_others_close() -> None:
    """With max_connections open and idle, another client is refused (503); once they go, it is served."""
    before = refusals("connection_limit")
    with serve(max_connections=2) as (service, _):
        idle = [connect(service), connect(service)]
        try:
            wait_for(lambda: not served(service), "the third connection to be refused")
        finally:
            for sock in idle:
                sock.close()
        wait_for(lambda: served(service), "a client to be served once the idle connections closed")
    assert refusals("connection_limit") > before


def test_the_refusal_at_the_cap_is_a_503_with_retry_after() -> None:
    """The connection past the cap reads a complete 503 answer with Retry-After before the close."""
    with serve(max_connections=1) as (service, _), connect(service) as holder:
        wait_for(lambda: not served(service), "the second connection to be refused")
        with connect(service) as refused:
            answer = read_to_end(refused)
        holder.close()
    assert answer.startswith(b"HTTP/1.0 503 ")
    assert b"Retry-After: 1" in answer


def test_an_event_stream_whose_reader_stops_reading_ends_after_the_send_timeout() -> None:
    """A stream client that reads nothing: the write stalls, and after send_timeout the stream is closed and its slot freed."""
    before = refusals("send_timeout")
    with serve(send_timeout=timedelta(milliseconds=300), max_connections=1) as (service, streams):
        reader = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            reader.settimeout(CLIENT_TIMEOUT_S)
            reader.connect(("127.0.0.1", service.port))
            reader.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert streams.closed.wait(CLIENT_TIMEOUT_S), "the stream was never closed"
            # The stream's thread has ended: the only connection slot is free again.
            wait_for(lambda: served(service), "the stream's connection slot to be freed")
        finally:
            reader.close()
    assert refusals("send_timeout") == before + 1


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
def test_post_bodies_that_are_not_json_are_refused_with_415(content_type: str | None) -> None:
    """The content types a cross-site form or no-cors fetch can send without a preflight are 415."""
    with serve() as (service, _):
        status, _ = request(
            service, "POST", "/echo", {"Content-Type": content_type, "Content-Length": "2"}, b"{}"
        )
        assert status == 415


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=utf-8"])
def test_json_bodies_are_accepted_whatever_the_case_and_charset(content_type: str) -> None:
    """application/json, with parameters and in any case, reaches the handler."""
    with serve() as (service, _):
        status, body = request(
            service, "POST", "/echo", {"Content-Type": content_type, "Content-Length": "8"}, b'{"a": 1}'
        )
    assert (status, body.count(b'"a": 1')) == (201, 1)


def test_a_post_without_a_body_is_400() -> None:
    """A body-less POST (a no-cors fetch can send one) never reaches a handler."""
    with serve() as (service, _):
        assert request(service, "POST", "/echo")[0] == 400


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example", 421),
        ("evil.example:8080", 421),
        ("localhost.evil.example", 421),
        ("127.0.0.1.evil.example", 421),
        ("dashboard.example.org", 200),
        ("DASHBOARD.example.org.:443", 200),
        ("a.b.ops.example.org", 200),
        ("ops.example.org", 421),
        ("localhost:8080", 200),
        ("127.0.0.1", 200),
        ("10.1.2.3:8080", 200),
        ("[::1]:8080", 200),
        ("[fe80::1]", 200),
        ("[not-an-address]", 400),
        ("user@evil.example", 400),
        ("evil.example/path", 400),
        ("", 400),
    ],
)
def test_the_host_header_must_name_an_address_or_an_allowed_name(host: str, status: int) -> None:
    """Names not allowed are 421 (DNS rebinding), malformed Host 400; addresses and listed names pass."""
    with serve(allowed_hosts=["dashboard.example.org", "*.ops.example.org"]) as (service, _):
        assert request(service, headers={"Host": host})[0] == status


def test_the_host_check_comes_before_the_token() -> None:
    """A rebinding page learns nothing, not even whether a token is set: 421 before 401."""
    with serve(token=TOKEN) as (service, _):
        assert request(service, "GET", "/query", {"Host": "evil.example"})[0] == 421
        assert request(service, "GET", "/query")[0] == 401


@pytest.mark.parametrize(
    ("version", "hosts", "status"),
    [
        ("HTTP/1.1", [], 400),
        ("HTTP/1.0", [], 200),
        ("HTTP/1.1", ["127.0.0.1", "evil.example"], 400),
        ("HTTP/1.1", ["127.0.0.1", "127.0.0.1"], 400),
    ],
)
def test_host_is_required_once_in_http_1_1(version: str, hosts: list[str], status: int) -> None:
    """HTTP/1.1 without Host or with two is 400 (RFC 9112 §3.2); HTTP/1.0 tools without Host are served."""
    with serve() as (service, _):
        lines = [f"GET /healthz {version}", *(f"Host: {h}" for h in hosts)]
        assert exchange(service, ("\r\n".join(lines) + "\r\n\r\n").encode())[0] == status


def test_a_star_in_allowed_hosts_turns_the_check_off() -> None:
    """allowed_hosts: ["*"] serves any well-formed Host."""
    with serve(allowed_hosts=["*"]) as (service, _):
        assert request(service, headers={"Host": "anything.example"})[0] == 200


def test_more_query_parameters_than_allowed_are_400() -> None:
    """max_query_params parameters pass; one more is 400, not a 500 from the parser."""
    with serve(max_query_params=5) as (service, _):
        assert request(service, path="/query?" + "&".join(f"p{i}=1" for i in range(5)))[0] == 200
        status, body = request(service, path="/query?" + "&".join(f"p{i}=1" for i in range(6)))
    assert status == 400
    assert b"more than 5 query parameters" in body


def test_absolute_targets_are_refused() -> None:
    """Only origin-form targets ("/path") are served; a proxy-style absolute URL is 400."""
    with serve() as (service, _):
        assert request(service, path="http://evil.example/healthz")[0] == 400


def test_stop_cuts_idle_connections_at_once() -> None:
    """stop() returns while a client holds an idle connection, and that client sees the close."""
    with serve() as (service, _), connect(service) as idle:
        wait_for(lambda: served(service), "the server to answer")
        service.stop()
        assert read_to_end(idle) == b""
