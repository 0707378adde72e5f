"""The retry verdict of an HTTP answer or a network failure, shared by every HTTP sink.

    2xx                      success (no error)
    429, 5xx                 retryable; `Retry-After` (seconds or an HTTP date) is honoured
    413                      split the batch in halves and write each (retryable, split=True)
    400, 422                 rejected: the server will never take these points (dead-lettered)
    401 / 403 / 404, other   unauthorized / forbidden / not_found / unexpected_status: a problem
                             of configuration, not of the points; retried (the sink is reported
                             down past its retry budget and the readings wait in the log),
                             because dead-lettering every reading for a wrong token loses data
    network error, timeout   retryable (a timed-out write may have been applied: writes are
                             idempotent, so retrying it is harmless)

InfluxDB 1.6 answers `500 engine: error syncing wal` to small concurrent writes, sometimes for
points it did store: retryable like any 5xx. The detail carries the server's message (InfluxDB's
JSON `message` or `error`, else the body), cut short; it never holds request headers, so no token.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Final

import urllib3.exceptions

from config.http import MAX_RETRY_AFTER_SECONDS, header, retry_after
from ingest.errors import SinkError

__all__ = ["MAX_RETRY_AFTER_SECONDS", "sink_error_from_exception", "sink_error_from_response"]

_STATUS_REASONS: Final[Mapping[int, str]] = {
    400: "rejected",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    413: "too_large",
    422: "rejected",
    429: "throttled",
    500: "server_error",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}
# A detail is a log field and an error message, not a copy of the server's answer.
MAX_DETAIL_CHARS: Final = 300


def sink_error_from_response(
    status: int, headers: Mapping[str, str], body: str, *, now: float | None = None
) -> SinkError | None:
    """The `SinkError` an HTTP answer stands for, or None for 2xx; `now` (epoch s) dates Retry-After."""
    if 200 <= status < 300:
        return None
    detail = f"HTTP {status}: {_message(body)}"
    if status == 413:
        return SinkError("too_large", detail, retryable=True, split=True)
    if status == 429 or 500 <= status < 600:
        reason = _STATUS_REASONS.get(status, "server_error")
        wait = retry_after(header(headers, "Retry-After"), time.time() if now is None else now)
        return SinkError(reason, detail, retryable=True, retry_after=wait)
    if status in (400, 422):
        return SinkError("rejected", detail, retryable=False)
    return SinkError(_STATUS_REASONS.get(status, "unexpected_status"), detail, retryable=True)


def sink_error_from_exception(exc: BaseException) -> SinkError:
    """The retryable `SinkError` for a request that got no HTTP answer (refused, reset, timed out, TLS)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    # urllib3 derives NewConnectionError (refused, unreachable) from ConnectTimeoutError: test it first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionError):
        reason = "connection_failed"
    elif isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError | socket.timeout):
        reason = "timeout"
    elif isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError):
        # A certificate problem needs an operator, but the points are fine: keep them and retry.
        reason = "tls"
    else:
        reason = "network"
    return SinkError(reason, _cut(f"{type(exc).__name__}: {exc}"), retryable=True)


def _message(body: str) -> str:
    text = body.strip()
    try:
        document = json.loads(text)
    except ValueError:
        return _cut(text) or "(empty body)"
    if isinstance(document, dict):
        for key in ("message", "error"):
            if isinstance(document.get(key), str):
                return _cut(document[key])
    return _cut(text)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"
