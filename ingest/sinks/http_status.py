"""The sinks' HTTP policy: what an answer or a network failure means to an HTTP sink.

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

The mechanism (status → verdict through a table, Retry-After, network failures) is the one the
notifiers use (`config.http.HTTPPolicy`); this table differs from theirs where a sink's situation
does: its readings wait in the log, so it retries a wrong token (401/403/404) and any status it
does not know, and it can halve a batch (413).

InfluxDB 1.6 answers `500 engine: error syncing wal` to small concurrent writes, sometimes for
points it did store: retryable like any 5xx. The detail carries the server's message (InfluxDB's
JSON `message` or `error`, else the body), cut short; it never holds request headers, so no token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from config.http import (
    MAX_DETAIL_CHARS,
    MAX_RETRY_AFTER_SECONDS,
    HTTPPolicy,
    NoAnswer,
    Verdict,
    describe_failure,
    one_line,
    server_message,
)
from ingest.errors import SinkError, SinkReason

__all__ = [
    "MAX_DETAIL_CHARS",
    "MAX_RETRY_AFTER_SECONDS",
    "POLICY",
    "sink_error_from_exception",
    "sink_error_from_response",
]


def _retry(reason: SinkReason) -> Verdict[SinkReason]:
    """The server is busy or down for now: try again, no sooner than it asks."""
    return Verdict(reason, retryable=True, honours_retry_after=True)


def _misconfigured(reason: SinkReason) -> Verdict[SinkReason]:
    """A problem of configuration, not of the points: keep them in the log and retry."""
    return Verdict(reason, retryable=True)


POLICY: Final[HTTPPolicy[SinkReason]] = HTTPPolicy(
    statuses={
        400: Verdict(SinkReason.REJECTED, retryable=False),
        401: _misconfigured(SinkReason.UNAUTHORIZED),
        403: _misconfigured(SinkReason.FORBIDDEN),
        404: _misconfigured(SinkReason.NOT_FOUND),
        413: Verdict(SinkReason.TOO_LARGE, retryable=True, split=True),
        422: Verdict(SinkReason.REJECTED, retryable=False),
        429: _retry(SinkReason.THROTTLED),
        502: _retry(SinkReason.UNAVAILABLE),
        503: _retry(SinkReason.UNAVAILABLE),
        504: _retry(SinkReason.UNAVAILABLE),
    },
    classes={5: _retry(SinkReason.SERVER_ERROR)},
    otherwise=_misconfigured(SinkReason.UNEXPECTED_STATUS),
    no_answer={
        NoAnswer.CONNECTION_FAILED: Verdict(SinkReason.CONNECTION_FAILED, retryable=True),
        NoAnswer.TIMEOUT: Verdict(SinkReason.TIMEOUT, retryable=True),
        # A certificate problem needs an operator, but the points are fine: keep them and retry.
        NoAnswer.TLS: Verdict(SinkReason.TLS, retryable=True),
        NoAnswer.NETWORK: Verdict(SinkReason.NETWORK, retryable=True),
    },
)
# InfluxDB 2 puts its error in `message`, InfluxDB 1.x and VictoriaMetrics in `error`.
_MESSAGE_KEYS: Final = ("message", "error")


def sink_error_from_response(
    status: int, headers: Mapping[str, str], body: str, *, now: float | None = None
) -> SinkError | None:
    """The `SinkError` an HTTP answer stands for, or None for 2xx; `now` (epoch s) dates Retry-After."""
    verdict = POLICY.judge_answer(status, headers, now=now)
    if verdict is None:
        return None
    return SinkError(
        verdict.reason,
        f"HTTP {status}: {one_line(server_message(body, _MESSAGE_KEYS))}",
        retryable=verdict.retryable,
        retry_after=verdict.retry_after,
        split=verdict.split,
    )


def sink_error_from_exception(exc: BaseException) -> SinkError:
    """The retryable `SinkError` for a request that got no HTTP answer (refused, reset, timed out, TLS)."""
    verdict = POLICY.judge_failure(exc)
    return SinkError(verdict.reason, one_line(describe_failure(exc)), retryable=verdict.retryable)
