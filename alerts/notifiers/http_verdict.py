"""The notifiers' HTTP policy: what an answer or a network failure means to a notifier.

    2xx                      accepted
    429, 5xx, 408            retryable; `Retry-After` (delay-seconds or an HTTP date) is honoured
    other 4xx, 1xx, 3xx      final: this message will never be taken as sent (delivery `failed`,
                             logged at error level, visible in stats and the API)
    network error, timeout   retryable (a timed-out send may have arrived: receivers drop repeats
                             by the idempotency key)

The mechanism (status → verdict through a table, Retry-After, network failures) is the one the
sinks use (`config.http.HTTPPolicy`); this table differs from theirs where a notifier's situation
does: a message refused with a 4xx (a wrong token, 413 too) is given up and shown to the
operator rather than retried, and a message has no batch to halve.

Robots that answer 200 with an error inside (DingTalk, WeCom, Slack-compatible servers) read
their body after this, as Alertmanager's `notify/wechat` reads `errcode`.

Secrets: DingTalk and WeCom carry their token in the URL, Slack's webhook URL is itself the
secret, and a receiver's error page may echo the request. Every detail therefore passes through
`scrub`, which removes each secret (raw and URL-encoded) before it becomes an exception message,
and network exceptions are re-raised without their cause, which may quote the URL.

DeliveryError            a send failed (reason: DeliveryReason, detail, retryable, retry_after)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import quote, quote_plus

import urllib3

from config.http import (
    MAX_DETAIL_CHARS,
    HTTPPolicy,
    NoAnswer,
    Verdict,
    describe_failure,
    one_line,
    server_message,
)

__all__ = [
    "MAX_DETAIL_CHARS",
    "POLICY",
    "REDACTED",
    "DeliveryError",
    "DeliveryReason",
    "HTTPAnswer",
    "errcode_error",
    "error_from_exception",
    "error_from_response",
    "post",
    "scrub",
]

REDACTED: Final = "<redacted>"


class DeliveryReason(StrEnum):
    """Why a send failed: the metric label and log field (a closed set, bounded cardinality)."""

    THROTTLED = "throttled"  # 429, or a robot's rate-limit errcode
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"  # 502, 503, 504
    REQUEST_TIMEOUT = "request_timeout"  # 408
    REJECTED = "rejected"  # 400, 422 and other 4xx
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    UNEXPECTED_STATUS = "unexpected_status"
    ROBOT_ERROR = "robot_error"  # 200 with an error code in the body
    CONNECTION_FAILED = "connection_failed"
    TIMEOUT = "timeout"
    TLS = "tls"
    NETWORK = "network"


def _retry(reason: DeliveryReason) -> Verdict[DeliveryReason]:
    """The receiver is busy or down for now: try again, no sooner than it asks."""
    return Verdict(reason, retryable=True, honours_retry_after=True)


def _final(reason: DeliveryReason) -> Verdict[DeliveryReason]:
    """No retry can fix it: the delivery is marked failed and shown to the operator."""
    return Verdict(reason, retryable=False)


POLICY: Final[HTTPPolicy[DeliveryReason]] = HTTPPolicy(
    statuses={
        401: _final(DeliveryReason.UNAUTHORIZED),
        403: _final(DeliveryReason.FORBIDDEN),
        404: _final(DeliveryReason.NOT_FOUND),
        408: _retry(DeliveryReason.REQUEST_TIMEOUT),
        429: _retry(DeliveryReason.THROTTLED),
        502: _retry(DeliveryReason.UNAVAILABLE),
        503: _retry(DeliveryReason.UNAVAILABLE),
        504: _retry(DeliveryReason.UNAVAILABLE),
    },
    classes={4: _final(DeliveryReason.REJECTED), 5: _retry(DeliveryReason.SERVER_ERROR)},
    otherwise=_final(DeliveryReason.UNEXPECTED_STATUS),
    no_answer={
        NoAnswer.CONNECTION_FAILED: Verdict(DeliveryReason.CONNECTION_FAILED, retryable=True),
        NoAnswer.TIMEOUT: Verdict(DeliveryReason.TIMEOUT, retryable=True),
        NoAnswer.TLS: Verdict(DeliveryReason.TLS, retryable=True),
        NoAnswer.NETWORK: Verdict(DeliveryReason.NETWORK, retryable=True),
    },
)
# Generic servers' `message` or `error`; the robots' `errmsg`.
_MESSAGE_KEYS: Final = ("message", "error", "errmsg")


class DeliveryError(Exception):
    """A failed send, with the verdict on retrying it."""

    def __init__(
        self,
        reason: DeliveryReason,
        detail: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class HTTPAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def error_from_response(
    answer: HTTPAnswer, secrets: Iterable[str] = (), *, now: float | None = None
) -> DeliveryError | None:
    """The `DeliveryError` an HTTP answer stands for, or None for 2xx; `now` (epoch s) dates Retry-After."""
    verdict = POLICY.judge_answer(answer.status, answer.headers, now=now)
    if verdict is None:
        return None
    detail = scrub(f"HTTP {answer.status}: {server_message(answer.text(), _MESSAGE_KEYS)}", secrets)
    return DeliveryError(verdict.reason, detail, retryable=verdict.retryable, retry_after=verdict.retry_after)


def error_from_exception(exc: BaseException, secrets: Iterable[str] = ()) -> DeliveryError:
    """The retryable `DeliveryError` for a send that got no HTTP answer (refused, reset, timed out, TLS)."""
    verdict = POLICY.judge_failure(exc)
    return DeliveryError(verdict.reason, scrub(describe_failure(exc), secrets), retryable=verdict.retryable)


def errcode_error(
    answer: HTTPAnswer,
    retry_codes: frozenset[int],
    throttle_codes: frozenset[int],
    throttle_retry_after: float,
    secrets: Iterable[str],
) -> DeliveryError | None:
    """The error in a robot's 200 answer (`{"errcode": n, "errmsg": ...}`), or None for errcode 0.

    DingTalk's and WeCom's robots answer this way. An answer without an errcode is not the
    robot's (a proxy's page, say) and is retried.
    """
    try:
        document = json.loads(answer.text())
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("errcode"), int):
        detail = scrub(f"answer without errcode: {answer.text()}", secrets)
        return DeliveryError(DeliveryReason.ROBOT_ERROR, detail, retryable=True)
    code: int = document["errcode"]
    if code == 0:
        return None
    detail = scrub(f"errcode {code}: {document.get('errmsg', '')}", secrets)
    if code in throttle_codes:
        return DeliveryError(
            DeliveryReason.THROTTLED, detail, retryable=True, retry_after=throttle_retry_after
        )
    return DeliveryError(DeliveryReason.ROBOT_ERROR, detail, retryable=code in retry_codes)


def post(
    pool: urllib3.PoolManager,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    secrets: Iterable[str] = (),
) -> HTTPAnswer:
    """POST once (no redirects, no retries: the outbox owns retrying); raises `DeliveryError` on no answer."""
    error: DeliveryError
    try:
        response = pool.request(
            "POST",
            url,
            body=body,
            headers=dict(headers),
            timeout=urllib3.Timeout(total=timeout),
            retries=False,
            redirect=False,
        )
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        error = error_from_exception(exc, secrets)
    else:
        return HTTPAnswer(response.status, dict(response.headers.items()), response.data)
    # Raised outside the handler so that no traceback carries the original, which may quote the URL.
    raise error


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` cut to `MAX_DETAIL_CHARS` with every secret, raw, URL-encoded or JSON-escaped, replaced."""
    for secret in secrets:
        if secret:
            escaped = json.dumps(secret)[1:-1]
            # Some JSON encoders also escape "/" (PHP's, for one): a Slack URL echoed back.
            forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret), escaped}
            forms.add(escaped.replace("/", "\\/"))
            for form in sorted(forms, key=len, reverse=True):
                text = text.replace(form, REDACTED)
    return one_line(text, MAX_DETAIL_CHARS)
