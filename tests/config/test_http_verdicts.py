"""The one HTTP verdict mechanism (config.http) and the two policy tables that use it."""

from __future__ import annotations

import ssl
from email.utils import formatdate
from enum import StrEnum
from typing import Any, cast

import pytest
import urllib3.exceptions

from alerts.notifiers import http_verdict
from config.http import (
    HTTPPolicy,
    NoAnswer,
    Verdict,
    describe_failure,
    no_answer,
    one_line,
    server_message,
)
from ingest.errors import SinkReason
from ingest.sinks import http_status

NOW = 1_795_600_000.0


class Why(StrEnum):
    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    GATEWAY = "gateway"
    REFUSED = "refused"
    ODD = "odd"
    NO_ANSWER = "no_answer"


POLICY: HTTPPolicy[Why] = HTTPPolicy(
    statuses={
        429: Verdict(Why.THROTTLED, retryable=True, honours_retry_after=True),
        502: Verdict(Why.GATEWAY, retryable=True, split=True),
    },
    classes={5: Verdict(Why.SERVER_ERROR, retryable=True, honours_retry_after=True)},
    otherwise=Verdict(Why.ODD, retryable=False),
    no_answer={kind: Verdict(Why.NO_ANSWER, retryable=True) for kind in NoAnswer},
)


def _new_connection_error() -> Exception:
    return urllib3.exceptions.NewConnectionError(cast(Any, None), "refused")


@pytest.mark.parametrize("status", [200, 204, 299])
def test_2xx_has_no_verdict(status: int) -> None:
    """Every 2xx answer is success, whatever the table says."""
    assert POLICY.judge_answer(status, {"Retry-After": "5"}) is None


@pytest.mark.parametrize(
    ("status", "reason", "split"),
    [
        (429, Why.THROTTLED, False),  # exact status
        (502, Why.GATEWAY, True),  # exact status before its class
        (500, Why.SERVER_ERROR, False),  # status class
        (599, Why.SERVER_ERROR, False),
        (404, Why.ODD, False),  # neither: otherwise
        (302, Why.ODD, False),
        (600, Why.ODD, False),
        (0, Why.ODD, False),
    ],
)
def test_a_status_is_judged_by_its_exact_entry_then_its_class_then_otherwise(
    status: int, reason: Why, split: bool
) -> None:
    """The lookup order is exact status, status class, then the policy's `otherwise`."""
    verdict = POLICY.judge_answer(status, {})

    assert verdict is not None
    assert (verdict.reason, verdict.split) == (reason, split)


def test_retry_after_is_read_only_where_the_table_honours_it() -> None:
    """Retry-After (any case of the name, seconds or HTTP date) fills in the wait only for honouring verdicts."""
    throttled = POLICY.judge_answer(429, {"retry-after": formatdate(NOW + 30, usegmt=True)}, now=NOW)
    gateway = POLICY.judge_answer(502, {"Retry-After": "30"}, now=NOW)

    assert throttled is not None
    assert throttled.retry_after == 30.0
    assert gateway is not None
    assert gateway.retry_after is None


def test_the_table_entries_are_not_changed_by_judging() -> None:
    """Judging returns a copy with the wait filled in; the table keeps its entry as written."""
    POLICY.judge_answer(429, {"Retry-After": "7"}, now=NOW)

    assert POLICY.statuses[429].retry_after is None


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(111, "Connection refused"), NoAnswer.CONNECTION_FAILED),
        (_new_connection_error(), NoAnswer.CONNECTION_FAILED),  # a ConnectTimeoutError subclass
        (
            urllib3.exceptions.MaxRetryError(cast(Any, None), "/", _new_connection_error()),
            NoAnswer.CONNECTION_FAILED,
        ),
        (urllib3.exceptions.ConnectTimeoutError("connect timed out"), NoAnswer.TIMEOUT),
        (TimeoutError("timed out"), NoAnswer.TIMEOUT),
        (ssl.SSLCertVerificationError("certificate verify failed"), NoAnswer.TLS),
        (urllib3.exceptions.ProtocolError("Connection aborted."), NoAnswer.NETWORK),
        (OSError("Network is unreachable"), NoAnswer.NETWORK),
    ],
)
def test_failures_without_an_answer_are_sorted_by_their_cause(exc: BaseException, kind: NoAnswer) -> None:
    """Refused, timed out, TLS or anything else, judged by the failure inside urllib3's retry wrapper."""
    assert no_answer(exc) is kind
    assert POLICY.judge_failure(exc) == Verdict(Why.NO_ANSWER, retryable=True)


def test_a_failure_is_described_by_its_cause() -> None:
    """A MaxRetryError is described by the failure inside it, type first."""
    wrapped = urllib3.exceptions.MaxRetryError(cast(Any, None), "/write", _new_connection_error())

    assert describe_failure(wrapped).startswith("NewConnectionError: ")


def test_a_policy_must_judge_every_kind_of_missing_answer() -> None:
    """A table without a verdict for each NoAnswer is refused when it is built, not when a request fails."""
    with pytest.raises(ValueError, match="tls"):
        HTTPPolicy(
            statuses={},
            classes={},
            otherwise=Verdict(Why.ODD, retryable=False),
            no_answer={kind: Verdict(Why.NO_ANSWER, retryable=True) for kind in NoAnswer if kind != "tls"},
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"message": "bad point", "error": "other"}', "bad point"),
        ('{"code": 1, "error": "engine: error syncing wal"}', "engine: error syncing wal"),
        ('{"errmsg": "robot says no"}', '{"errmsg": "robot says no"}'),  # not one of the keys
        ('{"message": 7}', '{"message": 7}'),  # not a string
        ("[1, 2]", "[1, 2]"),
        ("  <html>oops</html>\n", "<html>oops</html>"),
        ("   ", "(empty body)"),
    ],
)
def test_the_server_message_is_picked_out_of_a_body(body: str, message: str) -> None:
    """The first string under the given keys of a JSON object, else the stripped body."""
    assert server_message(body, ("message", "error")) == message


def test_one_line_joins_whitespace_and_cuts_with_an_ellipsis() -> None:
    """Details are one line of at most the limit, the last character an ellipsis when cut."""
    assert one_line("a\n  b\tc") == "a b c"
    cut = one_line("x" * 500, 10)
    assert (len(cut), cut[-1]) == (10, "…")


def _retry_verdicts(policy: HTTPPolicy[Any]) -> dict[int, bool]:
    verdicts = {status: policy.judge_answer(status, {}) for status in range(100, 600)}
    return {status: v.retryable for status, v in verdicts.items() if v is not None}


def test_the_sinks_and_notifiers_tables_differ_only_where_their_situations_do() -> None:
    """Both retry 408, 429 and 5xx and give up 400 and 422; a sink also retries every status a notifier
    gives up (401 and 413 among them: its readings wait in the log), and splits a batch on 413."""
    sinks = _retry_verdicts(http_status.POLICY)
    notifiers = _retry_verdicts(http_verdict.POLICY)

    assert all(sinks[s] and notifiers[s] for s in [408, 429, *range(500, 600)])
    assert not any(sinks[s] or notifiers[s] for s in (400, 422))
    differ = {s for s in sinks if sinks[s] != notifiers[s]}
    assert differ == set(range(100, 200)) | set(range(300, 500)) - {400, 408, 422, 429}
    assert all(sinks[s] and not notifiers[s] for s in differ)
    too_large = http_status.POLICY.judge_answer(413, {})
    assert too_large is not None
    assert (too_large.reason, too_large.split) == (SinkReason.TOO_LARGE, True)
