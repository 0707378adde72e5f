"""HTTP every client of ours shares: the connection pool, `Retry-After`, and how answers become verdicts.

Sinks (ingest) and notifiers (alerts) both turn an HTTP answer, or a request that got none, into
a retry verdict. The mechanism is one and lives here; what each status means is a policy table
kept beside its users (`ingest.sinks.http_status`, `alerts.notifiers.http_verdict`), because the
two legitimately differ: a sink keeps its readings in the log and retries a wrong token (401)
until an operator fixes it, and halves a batch the server finds too large (413), while a
notifier gives a message up on any 4xx but 408 and 429, and has nothing to halve.

    HTTPPolicy[R]            one client family's table, R its closed enum of reasons
    ├── statuses             a verdict per exact status (looked up first)
    ├── classes              a verdict per status class (5 for 5xx), then
    ├── otherwise            the verdict of any other status (1xx, 3xx, unlisted 4xx)
    └── no_answer            a verdict per `NoAnswer` (refused, timed out, TLS, network)
    judge_answer(status, headers)   None for 2xx, else the verdict, Retry-After filled in when honoured
    judge_failure(exc)              the verdict of an exception raised instead of an answer

Details for logs and errors: `server_message` picks the server's own message out of a body,
`one_line` cuts a text to one short line, `describe_failure` names an exception without its
urllib3 wrapper. None of them holds request headers, so no token reaches a detail.

Usage:
    policy = HTTPPolicy(
        statuses={429: Verdict(Why.THROTTLED, retryable=True, honours_retry_after=True)},
        classes={5: Verdict(Why.SERVER_ERROR, retryable=True)},
        otherwise=Verdict(Why.REFUSED, retryable=False),
        no_answer={kind: Verdict(Why.NO_ANSWER, retryable=True) for kind in NoAnswer},
    )
    policy.judge_answer(429, {"Retry-After": "30"})  # Verdict(Why.THROTTLED, ..., retry_after=30.0)
"""

from __future__ import annotations

import json
import math
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Final, Generic, TypeVar

import urllib3
import urllib3.exceptions

from config.types import TLSConfig

# A Retry-After past this is a misconfigured server; the caller's backoff cap applies instead.
MAX_RETRY_AFTER_SECONDS: Final = 3600.0
# A detail is a log field and an error message, not a copy of the server's answer.
MAX_DETAIL_CHARS: Final = 300

R = TypeVar("R", bound=StrEnum)


class NoAnswer(StrEnum):
    """Why a request got no HTTP answer at all; nothing is then known about its effect."""

    CONNECTION_FAILED = "connection_failed"  # refused, reset, unreachable
    TIMEOUT = "timeout"  # connect or read
    TLS = "tls"  # the handshake or the certificate
    NETWORK = "network"  # anything else: a protocol error, a connection dropped mid-answer


@dataclass(frozen=True, slots=True)
class Verdict(Generic[R]):
    """What a failed request means to its client: a reason it can count and whether to try again."""

    reason: R
    retryable: bool
    # Wait at least as long as the answer's Retry-After asks (RFC 9110 §10.2.3).
    honours_retry_after: bool = False
    # The body was too large for the server: halve it and send each half.
    split: bool = False
    # Seconds to wait from the answer's Retry-After; filled in by `HTTPPolicy.judge_answer`.
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class HTTPPolicy(Generic[R]):
    """One client family's verdicts: by exact status, by status class, otherwise, and without an answer.

    Annotate the name (`POLICY: Final[HTTPPolicy[Reason]] = HTTPPolicy(...)`) rather than call
    `HTTPPolicy[Reason](...)`: typing would then set `__orig_class__` on a frozen, slotted instance.
    """

    statuses: Mapping[int, Verdict[R]]
    classes: Mapping[int, Verdict[R]]
    otherwise: Verdict[R]
    no_answer: Mapping[NoAnswer, Verdict[R]]

    def __post_init__(self) -> None:
        missing = set(NoAnswer) - set(self.no_answer)
        if missing:
            raise ValueError(f"a policy needs a verdict for every NoAnswer; missing {sorted(missing)}")

    def judge_answer(
        self, status: int, headers: Mapping[str, str], *, now: float | None = None
    ) -> Verdict[R] | None:
        """None for 2xx, else the status's verdict; `now` (epoch s) dates an HTTP-date Retry-After."""
        if 200 <= status < 300:
            return None
        verdict = self.statuses.get(status)
        if verdict is None:
            verdict = self.classes.get(status // 100, self.otherwise)
        if not verdict.honours_retry_after:
            return verdict
        wait = retry_after(header(headers, "Retry-After"), time.time() if now is None else now)
        return replace(verdict, retry_after=wait)

    def judge_failure(self, exc: BaseException) -> Verdict[R]:
        """The verdict of a request that raised `exc` instead of answering."""
        return self.no_answer[no_answer(exc)]


def no_answer(exc: BaseException) -> NoAnswer:
    """What kind of failure `exc` is (urllib3's, the socket's or ssl's), judged by its cause."""
    exc = failure_cause(exc)
    # urllib3 derives NewConnectionError (refused, unreachable) from ConnectTimeoutError: test it first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionError):
        return NoAnswer.CONNECTION_FAILED
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError | socket.timeout):
        return NoAnswer.TIMEOUT
    if isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError):
        return NoAnswer.TLS
    return NoAnswer.NETWORK


def failure_cause(exc: BaseException) -> BaseException:
    """The failure inside urllib3's MaxRetryError (raised when a pool retries), else `exc` itself."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return exc.reason
    return exc


def describe_failure(exc: BaseException) -> str:
    """`Type: message` of the failure's cause (uncut: the caller cuts or scrubs it)."""
    cause = failure_cause(exc)
    return f"{type(cause).__name__}: {cause}"


def server_message(body: str, keys: tuple[str, ...]) -> str:
    """The server's own message: the first string under `keys` of a JSON object, else the body (uncut)."""
    text = body.strip()
    try:
        document = json.loads(text)
    except ValueError:
        return text or "(empty body)"
    if isinstance(document, dict):
        for key in keys:
            value = document.get(key)
            if isinstance(value, str):
                return value
    return text


def one_line(text: str, max_chars: int = MAX_DETAIL_CHARS) -> str:
    """`text` with its whitespace runs made single spaces, cut to `max_chars` with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3: delay-seconds or HTTP-date).

    `now` is the current epoch time in seconds, for the HTTP-date form. Clamped to
    [0, MAX_RETRY_AFTER_SECONDS]; None when absent or unreadable.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def make_pool(tls: TLSConfig | None = None) -> urllib3.PoolManager:
    """A connection pool that never retries or redirects by itself and verifies certificates."""
    tls = tls or TLSConfig()
    return urllib3.PoolManager(
        num_pools=2,
        retries=False,
        cert_reqs="CERT_NONE" if tls.insecure_skip_verify else "CERT_REQUIRED",
        ca_certs=str(tls.ca_file) if tls.ca_file else None,
        cert_file=str(tls.cert_file) if tls.cert_file else None,
        key_file=str(tls.key_file) if tls.key_file else None,
    )
