"""The HTTP server's internal events: requests and connections its limits refused or cut.

Each refusal bumps `ecowatch_http_refused_total{reason}` and writes a debug line; reaching the
connection limit is also a warning, at most once a minute (a flood writes one line, not thousands).
"""

from __future__ import annotations

import threading
import time
from enum import StrEnum
from typing import Final

import structlog
from prometheus_client import Counter, Gauge

log = structlog.get_logger("ingest.app.http")


class Refusal(StrEnum):
    CONNECTION_LIMIT = "connection_limit"  # 503 at once: max_connections are open
    HEADER_TIMEOUT = "header_timeout"  # closed: headers not complete within header_timeout
    HEADER_TOO_LARGE = "header_too_large"  # 431: more than max_header_bytes
    BAD_FRAMING = "bad_framing"  # 400/411: Content-Length not one non-negative integer, chunked
    BODY_TOO_LARGE = "body_too_large"  # 413: Content-Length above max_body_bytes
    BODY_TIMEOUT = "body_timeout"  # 408: body not complete within body_timeout
    CONTENT_TYPE = "content_type"  # 415: a POST body that is not application/json
    BAD_HOST = "bad_host"  # 400/421: Host missing, malformed or not allowed
    BAD_QUERY = "bad_query"  # 400: more than max_query_params
    SEND_TIMEOUT = "send_timeout"  # closed: a write made no progress for send_timeout


REFUSED: Final = Counter(
    "ecowatch_http_refused_total",
    "HTTP requests and connections refused or cut by a limit of the server, by reason.",
    ["reason"],
)
CONNECTIONS_OPEN: Final = Gauge("ecowatch_http_connections_open", "HTTP connections open now.")
for _reason in Refusal:
    REFUSED.labels(_reason.value)

# An operator should hear that clients are being turned away, but not once per connection.
_WARNING_INTERVAL_S: Final = 60.0


class _Throttle:
    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._interval:
                return False
            self._last = now
            return True


_limit_warning = _Throttle(_WARNING_INTERVAL_S)


def refused(reason: Refusal) -> None:
    REFUSED.labels(reason.value).inc()
    log.debug("http_refused", reason=reason.value)


def connection_limit_reached(limit: int) -> None:
    refused(Refusal.CONNECTION_LIMIT)
    if _limit_warning.due():
        log.warning("http_connection_limit_reached", max_connections=limit)


def connection_opened() -> None:
    CONNECTIONS_OPEN.inc()


def connection_closed() -> None:
    CONNECTIONS_OPEN.dec()
