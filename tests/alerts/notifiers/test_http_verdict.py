"""The shared delivery verdict: statuses, Retry-After, network errors, robot errcodes, scrubbing."""

from __future__ import annotations

from email.utils import formatdate

import pytest
import urllib3

from alerts.notifiers.http_verdict import (
    MAX_DETAIL_CHARS,
    DeliveryReason,
    HTTPAnswer,
    errcode_error,
    error_from_exception,
    error_from_response,
    scrub,
)
from config.http import MAX_RETRY_AFTER_SECONDS, retry_after

NOW = 1_795_600_000.0


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_accepted(status: int) -> None:
    """Every 2xx answer is acceptance."""
    assert error_from_response(HTTPAnswer(status, {}, b"")) is None


@pytest.mark.parametrize(
    ("status", "reason", "retryable"),
    [
        (400, DeliveryReason.REJECTED, False),
        (401, DeliveryReason.UNAUTHORIZED, False),
        (403, DeliveryReason.FORBIDDEN, False),
        (404, DeliveryReason.NOT_FOUND, False),
        (408, DeliveryReason.REQUEST_TIMEOUT, True),
        (413, DeliveryReason.REJECTED, False),
        (422, DeliveryReason.REJECTED, False),
        (429, DeliveryReason.THROTTLED, True),
        (500, DeliveryReason.SERVER_ERROR, True),
        (502, DeliveryReason.UNAVAILABLE, True),
        (503, DeliveryReason.UNAVAILABLE, True),
        (504, DeliveryReason.UNAVAILABLE, True),
        (507, DeliveryReason.SERVER_ERROR, True),
        (302, DeliveryReason.UNEXPECTED_STATUS, False),
    ],
)
def test_status_maps_to_reason_and_verdict(status: int, reason: DeliveryReason, retryable: bool) -> None:
    """429, 408 and 5xx retry; other 4xx and redirects (never followed) are final."""
    error = error_from_response(HTTPAnswer(status, {}, b'{"message": "why"}'))

    assert error is not None
    assert (error.reason, error.retryable) == (reason, retryable)
    assert error.detail == f"HTTP {status}: why"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("  7 ", 7.0),
        (formatdate(NOW + 90, usegmt=True), 90.0),
        (formatdate(NOW - 90, usegmt=True), 0.0),
        ("99999999", MAX_RETRY_AFTER_SECONDS),
        ("soon", None),
        ("nan", None),
        ("", None),
    ],
)
def test_retry_after_seconds_or_date(header: str, expected: float | None) -> None:
    """Retry-After is delay-seconds or an HTTP date, clamped to [0, an hour]; nonsense is ignored."""
    assert retry_after(header, NOW) == expected
    error = error_from_response(HTTPAnswer(503, {"retry-after": header}, b""), now=NOW)
    assert error is not None
    assert error.retry_after == expected


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (urllib3.exceptions.NewConnectionError(None, "refused"), DeliveryReason.CONNECTION_FAILED),  # type: ignore[arg-type]
        (ConnectionResetError("reset"), DeliveryReason.CONNECTION_FAILED),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), DeliveryReason.TIMEOUT),  # type: ignore[arg-type]
        (TimeoutError("timed out"), DeliveryReason.TIMEOUT),
        (urllib3.exceptions.SSLError("bad cert"), DeliveryReason.TLS),
        (urllib3.exceptions.ProtocolError("Connection aborted"), DeliveryReason.NETWORK),
    ],
)
def test_network_failures_are_retryable(exc: BaseException, reason: DeliveryReason) -> None:
    """Refused, reset, timed out, TLS or protocol failures are all retried."""
    error = error_from_exception(exc)

    assert (error.reason, error.retryable) == (reason, True)


def test_errcode_zero_is_success_and_others_follow_the_lists() -> None:
    """errcode 0 accepts; listed codes retry (throttle codes with the throttle's wait); others are final."""

    def verdict(body: bytes) -> tuple[str, bool, float | None] | None:
        error = errcode_error(HTTPAnswer(200, {}, body), frozenset({-1, 7}), frozenset({7}), 60.0, [])
        return None if error is None else (error.reason, error.retryable, error.retry_after)

    assert verdict(b'{"errcode": 0, "errmsg": "ok"}') is None
    assert verdict(b'{"errcode": 7, "errmsg": "slow"}') == ("throttled", True, 60.0)
    assert verdict(b'{"errcode": -1, "errmsg": "busy"}') == ("robot_error", True, None)
    assert verdict(b'{"errcode": 3, "errmsg": "no"}') == ("robot_error", False, None)
    assert verdict(b'{"errcode": "0"}') == ("robot_error", True, None)
    assert verdict(b"not json") == ("robot_error", True, None)


def test_scrub_removes_raw_and_encoded_secrets_and_cuts() -> None:
    """Secrets go, raw, URL-encoded or JSON-escaped; the detail is cut to its maximum length."""
    secret = "a/b+c=d"
    text = f"url?k={secret}&q=a%2Fb%2Bc%3Dd plus=a%2Fb%2Bc%3Dd json=a\\/b+c=d " + "x" * 1000

    cleaned = scrub(text, [secret])

    assert "a/b" not in cleaned
    assert "a%2F" not in cleaned
    assert "a\\/b" not in cleaned
    assert cleaned.count("<redacted>") == 4
    assert len(cleaned) == MAX_DETAIL_CHARS
