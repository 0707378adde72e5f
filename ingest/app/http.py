"""The daemon's HTTP server: /metrics, probes, the dashboard, and the JSON API routes components register.

Routes are exact (method, path) pairs; a handler gets the parsed query and, for POST, the JSON
body, and returns (status, JSON value), a `RawBody` or an `EventStream`. Handlers validate their
input and raise `BadRequest` (400) or `NotFound` (404). When an API token is configured, every route
but /metrics, /healthz, /readyz and the public pages requires `Authorization: Bearer`.

Before any handler runs, each request passes, in this order (limits in `ingest.app.http_config`):
- framing and size (`ingest.app.http_server`): headers within `header_timeout` and `max_header_bytes`
  (else closed / 431), at most `max_connections` open (else 503);
- `Host` (against DNS rebinding): missing in HTTP/1.1, repeated or malformed is 400, as RFC 9112
  §3.2 requires; a well-formed name that is not allowed is 421 Misdirected Request, RFC 9110's
  answer for "this server does not serve that authority", which tells an operator behind a new
  name what to configure rather than that the request was garbage;
- the token (401); the route (404, 405); at most `max_query_params` (400);
- for POST: one non-negative Content-Length (400; chunked is 411), `application/json` (415, also
  for a body with no type; a body-less POST is 400), at most `max_body_bytes` (413, before reading),
  the body within `body_timeout` (408), valid JSON (400). Requiring JSON makes every cross-site POST
  need a CORS preflight, which nothing here answers: no page elsewhere can ack or silence alerts
  with the user's browser, token or not.
Responses and stream events are written with `send_timeout` per write (`ingest.app.http_server`).

Why the stdlib server, hardened, and not waitress (3.0.2, read in its source; it installs from
PyPI): waitress validates Content-Length (400) and body size (413) and caps connections, but its
`channel_timeout` is an inactivity timer, so a client sending a header byte a second holds its
connection for ever, and its maintenance loop skips channels with a running request, so a
dashboard stream whose reader stopped reading is never cut. Header deadlines and the stream send
timeout would still be ours, on top of its output buffering (an event smaller than `send_bytes`
waits for the next turn of its loop unless `send_bytes=1`) and its fixed pool of worker threads,
which the long-lived streams would share with the API, so a few open dashboards would starve it.
What it would have added (strict Content-Length, a body limit, a connection cap) is a few dozen
lines here; the route contract, one thread per connection and the tests stay as they were.
"""

from __future__ import annotations

import hmac
import socket
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.app.http_config import HostAllowList, HostVerdict, HTTPConfig
from ingest.app.http_events import Refusal
from ingest.app.http_server import GuardedHandler, GuardedServer, Rejected
from ingest.routes import BadRequest, EventStream, Handler, NotFound, RawBody, Request

log = structlog.get_logger(__name__)

OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


class HTTPService:
    """The server on (host, port); limits and allowed hosts come from `config` (defaults without)."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[tuple[str, str], Handler],
        token: str | None = None,
        public_paths: frozenset[str] = frozenset(),
        *,
        config: HTTPConfig | None = None,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("the API token must not be empty")
        limits = config if config is not None else HTTPConfig()
        self._routes = dict(routes)
        self._token = token
        # Paths served without the token: probes, metrics, and pages that hold no data.
        self._open_paths = OPEN_PATHS | public_paths
        self._hosts = HostAllowList([*limits.allowed_hosts, host, socket.gethostname()])
        self._max_query_params = limits.max_query_params
        self._server = GuardedServer((host, port), self._handler_class(), limits)
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
        """Stop accepting, cut the open connections, release the port."""
        if self._thread.is_alive():
            self._server.stop()
        else:
            self._server.server_close()

    def _authorized(self, path: str, header: str | None) -> bool:
        if self._token is None or path in self._open_paths:
            return True
        expected = f"Bearer {self._token}".encode()
        return header is not None and hmac.compare_digest(header.encode(), expected)

    def _handler_class(self) -> type[GuardedHandler]:
        service = self

        class RequestHandler(GuardedHandler):
            def dispatch(self, method: str) -> None:
                try:
                    status, body = self._answer(method)
                except Rejected as exc:
                    self._send_json(exc.status, {"error": exc.message}, exc.headers)
                    return
                if isinstance(body, RawBody):
                    self._send(status, body.body, body.content_type, body.headers)
                elif isinstance(body, EventStream):
                    self._stream(body)
                else:
                    self._send_json(status, body)

            def _answer(self, method: str) -> tuple[int, Any]:
                self.end_of_headers()
                self._check_host()
                if not self.path.startswith("/"):
                    raise Rejected(400, "the request target must be a path")
                path, _, query = self.path.partition("?")
                if not service._authorized(path, self.headers.get("Authorization")):
                    raise Rejected(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
                if method == "GET" and path == "/metrics":
                    return 200, RawBody(CONTENT_TYPE_LATEST, generate_latest())
                route = service._routes.get((method, path))
                if route is None:
                    if any(known == path for _, known in service._routes):
                        return 405, {"error": "method not allowed"}
                    return 404, {"error": "not found"}
                try:
                    params = parse_qs(query, max_num_fields=service._max_query_params)
                except ValueError:
                    raise Rejected(
                        400, f"more than {service._max_query_params} query parameters", Refusal.BAD_QUERY
                    ) from None
                body = self._json_body() if method == "POST" else None
                request = Request(method, path, params, body, dict(self.headers.items()))
                try:
                    return route(request)
                except BadRequest as exc:
                    return 400, {"error": str(exc)}
                except NotFound as exc:
                    return 404, {"error": str(exc) or "not found"}
                except Exception:
                    log.exception("http_handler_failed", path=path, method=method)
                    return 500, {"error": "internal error"}

            def _check_host(self) -> None:
                verdict = service._hosts.check(
                    self.headers.get_all("Host") or [], self.request_version != "HTTP/1.0"
                )
                if verdict is HostVerdict.MALFORMED:
                    raise Rejected(400, "one valid Host header is required", Refusal.BAD_HOST)
                if verdict is HostVerdict.NOT_ALLOWED:
                    raise Rejected(
                        421, "this host name is not served here (see http.allowed_hosts)", Refusal.BAD_HOST
                    )

            def _json_body(self) -> Any:
                raw = self.read_body()
                if not raw:
                    return None
                try:
                    return orjson.loads(raw)
                except orjson.JSONDecodeError:
                    raise Rejected(400, "body is not JSON") from None

            def _stream(self, stream: EventStream) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Accel-Buffering", "no")
                self.end_headers()
                try:
                    for chunk in stream.chunks:
                        self.wfile.write(chunk)
                except OSError:
                    pass  # the browser went away, or stopped reading for send_timeout
                finally:
                    close = getattr(stream.chunks, "close", None)
                    if close is not None:
                        close()
                self.close_connection = True

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

        return RequestHandler
