"""The `influxdb` sink against a loopback stub that answers as InfluxDB 2 does (no InfluxDB 2 binary here)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ingest.errors import SinkError
from ingest.model import Reading
from ingest.sinks.influxdb import InfluxDBSink, InfluxDBSinkConfig

TOKEN = "influx2-token-that-must-not-leak"
T0 = 1_795_600_000_123_456_789
# What InfluxDB 2.x answers to a write with an empty body once token, org and bucket are good.
EMPTY_WRITE: tuple[int, dict[str, str], bytes] = (
    400,
    {},
    b'{"code":"invalid","message":"writing requires points"}',
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Stub:
    """Answers by path with (status, headers, body); records every request."""

    url: str = ""
    answers: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    hang: threading.Event | None = None


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub(
        answers={"/ping": (204, {"X-Influxdb-Version": "v2.7.4"}, b""), "/api/v2/write": (204, {}, b"")}
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            parts = urlsplit(self.path)
            state.requests.append(
                Request(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
            )
            if state.hang is not None:
                state.hang.wait(5)
            status, headers, answer = state.answers[parts.path]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if state.hang is not None:
            state.hang.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def make_sink(stub: Stub, **overrides: Any) -> InfluxDBSink:
    settings = {"name": "tsdb", "url": stub.url, "org": "ecowatch", "bucket": "water", "token": TOKEN}
    return InfluxDBSink(InfluxDBSinkConfig.model_validate(settings | overrides))


def reading(value: float = 7.6) -> Reading:
    return Reading(
        "cq-cj-cuntan", "water_quality", "ph", value, "", T0, tags=(("station_id", "cq-cj-cuntan"),)
    )


def write_error(stub: Stub, **overrides: Any) -> SinkError:
    sink = make_sink(stub, **overrides)
    try:
        with pytest.raises(SinkError) as caught:
            sink.write([reading()])
    finally:
        sink.close()
    assert TOKEN not in str(caught.value)
    return caught.value


@pytest.mark.parametrize("gzip_body", [False, True])
def test_write_posts_line_protocol_at_ns_precision_with_the_token(stub: Stub, gzip_body: bool) -> None:
    """One POST to /api/v2/write with org, bucket, precision=ns, `Token` auth and our own line protocol."""
    sink = make_sink(stub, gzip=gzip_body)
    sink.write([reading(7.5)])
    sink.close()

    [request] = stub.requests
    assert (request.method, request.path) == ("POST", "/api/v2/write")
    assert request.query == {"org": ["ecowatch"], "bucket": ["water"], "precision": ["ns"]}
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert request.body == f'water_quality,station_id=cq-cj-cuntan ph=7.5,ph_flag="N" {T0}\n'.encode()


def test_an_empty_batch_sends_nothing(stub: Stub) -> None:
    """No readings, no request."""
    make_sink(stub).write([])

    assert stub.requests == []


def test_check_accepts_influxdb2s_answer_to_an_empty_write(stub: Stub) -> None:
    """`400 writing requires points` means token, org and bucket passed: the server is ready."""
    stub.answers["/api/v2/write"] = EMPTY_WRITE

    make_sink(stub).check()

    assert [(r.method, r.path, r.body) for r in stub.requests] == [
        ("GET", "/ping", b""),
        ("POST", "/api/v2/write", b""),
    ]


@pytest.mark.parametrize(
    ("status", "body", "reason", "retryable"),
    [
        (401, b'{"code":"unauthorized","message":"unauthorized access"}', "unauthorized", True),
        (403, b'{"code":"forbidden","message":"insufficient permissions for write"}', "forbidden", True),
        (404, b'{"code":"not found","message":"bucket \\"water\\" not found"}', "not_found", True),
        (400, b'{"code":"invalid","message":"Please provide either orgID or org"}', "rejected", False),
    ],
)
def test_check_reports_what_the_probe_write_was_refused_for(
    stub: Stub, status: int, body: bytes, reason: str, retryable: bool
) -> None:
    """A refused probe write fails check() with the reason and verdict, without the token."""
    stub.answers["/api/v2/write"] = (status, {}, body)
    sink = make_sink(stub)

    with pytest.raises(SinkError) as caught:
        sink.check()

    assert (caught.value.reason, caught.value.retryable) == (reason, retryable)
    assert TOKEN not in str(caught.value)


def test_throttling_carries_the_retry_after_delay(stub: Stub) -> None:
    """429 with Retry-After is retryable after the server's delay."""
    stub.answers["/api/v2/write"] = (
        429,
        {"Retry-After": "7"},
        b'{"code":"too many requests","message":"slow down"}',
    )

    error = write_error(stub)

    assert (error.reason, error.retryable, error.retry_after) == ("throttled", True, 7.0)


def test_too_large_asks_for_a_split(stub: Stub) -> None:
    """413 tells the delivery loop to halve the batch."""
    stub.answers["/api/v2/write"] = (413, {}, b'{"code":"request too large","message":"too large"}')

    error = write_error(stub)

    assert (error.reason, error.split) == ("too_large", True)


def test_the_client_itself_never_retries(stub: Stub) -> None:
    """A 503 reaches the caller after exactly one request: influxdb-client adds no retries of its own."""
    stub.answers["/api/v2/write"] = (503, {}, b"unavailable")

    error = write_error(stub)

    assert (error.reason, error.retryable) == ("unavailable", True)
    assert len(stub.requests) == 1


def test_a_hung_server_times_out_as_retryable(stub: Stub) -> None:
    """A server that does not answer within the timeout gives a retryable `timeout`."""
    stub.hang = threading.Event()

    error = write_error(stub, timeout="PT0.2S")

    assert (error.reason, error.retryable) == ("timeout", True)
