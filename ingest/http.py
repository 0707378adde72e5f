"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /api/v1/stats, /api/v1/deadletters.

A small threaded stdlib server: these endpoints are read by Prometheus and probes, not by crowds.
Query parameters are validated; unknown paths are 404; nothing here writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = structlog.get_logger(__name__)

JsonHandler = Callable[[dict[str, list[str]]], tuple[int, Any]]


class BadRequest(ValueError):
    """A query parameter is missing or malformed; answered with 400."""


class HTTPService:
    def __init__(self, host: str, port: int, routes: dict[str, JsonHandler]) -> None:
        self._routes = routes
        handler = self._handler_class()
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        routes = self._routes

        class Handler(BaseHTTPRequestHandler):
            server_version = "ecowatch"

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/metrics":
                    self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                    return
                route = routes.get(url.path)
                if route is None:
                    self._send_json(404, {"error": "not found"})
                    return
                try:
                    status, body = route(parse_qs(url.query, max_num_fields=20))
                except BadRequest as exc:
                    status, body = 400, {"error": str(exc)}
                except Exception:
                    log.exception("http_handler_failed", path=url.path)
                    status, body = 500, {"error": "internal error"}
                self._send_json(status, body)

            def _send_json(self, status: int, body: Any) -> None:
                self._send(status, orjson.dumps(body, option=orjson.OPT_INDENT_2), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # requests are counted by Prometheus, not logged one by one

        return Handler


def int_param(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
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
