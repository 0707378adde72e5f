"""The retry verdicts of HTTP answers and network failures shared by the HTTP sinks."""

from __future__ import annotations

import ssl
from email.utils import formatdate
from typing import Any, cast

import pytest
import urllib3.exceptions

from ingest.errors import SinkReason
from ingest.sinks.http_status import (
    MAX_DETAIL_CHARS,
    MAX_RETRY_AFTER_SECONDS,
    sink_error_from_exception,
    sink_error_from_response,
)

NOW = 1_795_600_000.0


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_success_is_no_error(status: int) -> None:
    """Every 2xx answer means the write was stored."""
    assert sink_error_from_response(status, {}, "") is None


@pytest.mark.parametrize(
    ("status", "reason", "retryable", "split"),
    [
        (400, "rejected", False, False),
        (401, "unauthorized", True, False),
        (403, "forbidden", True, False),
        (404, "not_found", True, False),
        (405, "unexpected_status", True, False),
        (413, "too_large", True, True),
        (422, "rejected", False, False),
        (429, "throttled", True, False),
        (500, "server_error", True, False),
        (501, "server_error", True, False),
        (502, "unavailable", True, False),
        (503, "unavailable", True, False),
        (504, "unavailable", True, False),
        (301, "unexpected_status", True, False),
        (100, "unexpected_status", True, False),
    ],
)
def test_status_maps_to_reason_and_verdict(status: int, reason: str, retryable: bool, split: bool) -> None:
    """Each status gets its countable reason and retry verdict (only 400/422 are final), for 413 a split."""
    error = sink_error_from_response(status, {}, "")

    assert error is not None
    assert (error.reason, error.retryable, error.split) == (reason, retryable, split)
    assert error.detail.startswith(f"HTTP {status}: ")


def test_influxdb1_wal_sync_error_is_retryable() -> None:
    """InfluxDB 1.6's `500 engine: error syncing wal` is retried; the server message is the detail."""
    error = sink_error_from_response(500, {}, '{"error":"engine: error syncing wal"}')

    assert error is not None
    assert error.retryable
    assert error.detail == "HTTP 500: engine: error syncing wal"


def test_influxdb2_message_is_the_detail() -> None:
    """InfluxDB 2's JSON error body contributes its `message`."""
    body = '{"code":"invalid","message":"unable to parse \'x\': missing fields"}'

    error = sink_error_from_response(400, {}, body)

    assert error is not None
    assert error.detail == "HTTP 400: unable to parse 'x': missing fields"


def test_plain_body_is_cut_short_on_one_line() -> None:
    """A long text body (an HTML error page) becomes one line of at most MAX_DETAIL_CHARS characters."""
    error = sink_error_from_response(502, {}, "<html>\n" + "x" * 5000 + "\n</html>")

    assert error is not None
    message = error.detail.removeprefix("HTTP 502: ")
    assert "\n" not in message
    assert len(message) == MAX_DETAIL_CHARS


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),
        (formatdate(NOW + 30, usegmt=True), 30.0),
        (formatdate(NOW - 30, usegmt=True), 0.0),
        ("99999999", MAX_RETRY_AFTER_SECONDS),
        ("soon", None),
        ("", None),
        ("nan", None),
    ],
)
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_in_seconds_or_as_a_date(
    status: int, header: str, seconds: float | None
) -> None:
    """Retry-After as delay-seconds or HTTP-date becomes seconds to wait, clamped; junk is ignored."""
    error = sink_error_from_response(status, {"Retry-After": header}, "", now=NOW)

    assert error is not None
    assert error.retry_after == seconds


def test_retry_after_header_name_is_case_insensitive() -> None:
    """A plain dict of headers in any spelling still yields the Retry-After value."""
    error = sink_error_from_response(429, {"retry-after": "4"}, "", now=NOW)

    assert error is not None
    assert error.retry_after == 4.0


def test_retry_after_is_ignored_on_permanent_errors() -> None:
    """A permanent error carries no retry delay, whatever the server says."""
    error = sink_error_from_response(400, {"Retry-After": "4"}, "")

    assert error is not None
    assert error.retry_after is None


def _new_connection_error() -> Exception:
    return urllib3.exceptions.NewConnectionError(
        cast(Any, None), "Failed to establish a new connection: refused"
    )


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection_failed"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection_failed"),
        (_new_connection_error(), "connection_failed"),
        (
            urllib3.exceptions.MaxRetryError(cast(Any, None), "/write", _new_connection_error()),
            "connection_failed",
        ),
        (urllib3.exceptions.ReadTimeoutError(cast(Any, None), "/write", "Read timed out."), "timeout"),
        (urllib3.exceptions.ConnectTimeoutError("connect timed out"), "timeout"),
        (TimeoutError("timed out"), "timeout"),
        (urllib3.exceptions.SSLError("certificate verify failed"), "tls"),
        (ssl.SSLCertVerificationError("certificate verify failed"), "tls"),
        (urllib3.exceptions.ProtocolError("Connection aborted."), "network"),
        (OSError("Network is unreachable"), "network"),
    ],
)
def test_failures_without_an_answer_are_retryable(exc: Exception, reason: str) -> None:
    """No answer means nothing is known about the write: always retry (writes are idempotent)."""
    error = sink_error_from_exception(exc)

    assert (error.reason, error.retryable, error.split) == (reason, True, False)


def test_urllib3_retry_wrapper_is_unwrapped() -> None:
    """A MaxRetryError is judged and described by the failure inside it."""
    error = sink_error_from_exception(
        urllib3.exceptions.MaxRetryError(cast(Any, None), "/write", _new_connection_error())
    )

    assert error.detail.startswith("NewConnectionError: ")


def test_every_reason_is_a_member_of_the_closed_set() -> None:
    """Whatever the status or failure, the reason is a `SinkReason` (a bounded metric label)."""
    answers = [sink_error_from_response(status, {}, "") for status in range(0, 700)]
    failures = [sink_error_from_exception(exc) for exc in (TimeoutError(), OSError(), ssl.SSLError())]

    assert all(isinstance(e.reason, SinkReason) for e in [*answers, *failures] if e is not None)
