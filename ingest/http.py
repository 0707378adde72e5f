"""The daemon's HTTP server: /metrics, probes, and the JSON API routes components register.

A small threaded stdlib server: it is read by Prometheus, probes, operators' tools and the
dashboard, not by crowds. Routes are exact (method, path) pairs; a handler gets the parsed query
and, for POST, the JSON body (at most `MAX_BODY_BYTES`), and returns (status, JSON value).
Handlers validate their input and raise `BadRequest` (400) or `NotFound` (404). When an API token
is configured, every route but /metrics, /healthz and /readyz requires `Authorization: Bearer`.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = structlog.get_logger(__name__)

# Operator API bodies are small JSON documents (an ack, a silence).
MAX_BODY_BYTES = 64 * 1024
OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    body: Any
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RawBody:
    """A non-JSON answer (a page, a script, a stylesheet)."""

    content_type: str
    body: bytes
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class EventStream:
    """A server-sent events answer: each chunk the iterator yields is written and flushed at once.

    The iterator should end when the client goes away (a write fails) or the service stops.
    """

    chunks: Iterator[bytes]


Handler = Callable[[Request], tuple[int, Any]]


class BadRequest(ValueError):
    """The request is malformed; answered with 400 and the message."""


class NotFound(LookupError):
    """The addressed object does not exist; answered with 404."""


class HTTPService:
    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[tuple[str, str], Handler],
        token: str | None = None,
        public_paths: frozenset[str] = frozenset(),
    ) -> None:
        self._routes = dict(routes)
        self._token = token
        # Paths served without the token: probes, metrics, and pages that hold no data.
        self._open_paths = OPEN_PATHS | public_paths
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval makes stop() prompt (shutdown waits for the loop to look).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def add_routes(self, routes: Mapping[tuple[str, str], Handler]) -> None:
        """Register more routes (before start)."""
        self._routes.update(routes)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _authorized(self, path: str, header: str | None) -> bool:
        if self._token is None or path in self._open_paths:
            return True
        expected = f"Bearer {self._token}".encode()
        return header is not None and hmac.compare_digest(header.encode(), expected)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class RequestHandler(BaseHTTPRequestHandler):
            server_version = "ecowatch"

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_DELETE(self) -> None:
                self._dispatch("DELETE")

            def _dispatch(self, method: str) -> None:
                url = urlsplit(self.path)
                if not service._authorized(url.path, self.headers.get("Authorization")):
                    self._send_json(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
                    return
                if method == "GET" and url.path == "/metrics":
                    self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                    return
                route = service._routes.get((method, url.path))
                if route is None:
                    known = any(path == url.path for _, path in service._routes)
                    self._send_json(
                        405 if known else 404, {"error": "method not allowed" if known else "not found"}
                    )
                    return
                try:
                    request = Request(
                        method,
                        url.path,
                        parse_qs(url.query, max_num_fields=20),
                        self._body(method),
                        dict(self.headers.items()),
                    )
                    status, body = route(request)
                except BadRequest as exc:
                    status, body = 400, {"error": str(exc)}
                except NotFound as exc:
                    status, body = 404, {"error": str(exc) or "not found"}
                except Exception:
                    log.exception("http_handler_failed", path=url.path, method=method)
                    status, body = 500, {"error": "internal error"}
                if isinstance(body, RawBody):
                    self._send(status, body.body, body.content_type, body.headers)
                elif isinstance(body, EventStream):
                    self._stream(body)
                else:
                    self._send_json(status, body)

            def _stream(self, stream: EventStream) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Accel-Buffering", "no")
                self.end_headers()
                try:
                    for chunk in stream.chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the browser went away
                finally:
                    close = getattr(stream.chunks, "close", None)
                    if close is not None:
                        close()
                self.close_connection = True

            def _body(self, method: str) -> Any:
                if method != "POST":
                    return None
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    raise BadRequest("bad Content-Length") from None
                if length > MAX_BODY_BYTES:
                    raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")
                raw = self.rfile.read(length) if length else b""
                if not raw:
                    return None
                try:
                    return orjson.loads(raw)
                except orjson.JSONDecodeError:
                    raise BadRequest("body is not JSON") from None

            def _send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
                self._send(
                    status, orjson.dumps(body, option=orjson.OPT_INDENT_2), "application/json", headers
                )

            def _send(
                self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Cache-Control", "no-store")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # requests are counted by Prometheus, not logged one by one

        return RequestHandler


def int_param(query: Mapping[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be within [{low}, {high}]")
    return value


def str_param(query: Mapping[str, list[str]], name: str, max_length: int = 64) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values[0]) > max_length:
        raise BadRequest(f"{name} is longer than {max_length} characters")
    return values[0]
