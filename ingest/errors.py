"""Errors of the ingestion path, each carrying a reason a machine can count.

IngestError
├── RejectedPayload      a whole message cannot be used (reason: RejectReason)
├── SinkError            a sink write failed (reason, retryable, retry_after)
└── WalFullError         the write-ahead log reached its disk quota
"""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    """Why a message or a reading was dead-lettered: the `reason` column and metric label."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    BAD_TOPIC = "bad_topic"
    TOPIC_MISMATCH = "topic_mismatch"
    UNKNOWN_FORMAT = "unknown_format"
    BAD_LENGTH = "bad_length"
    BAD_CRC = "bad_crc"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a reason name, not a password
    UNSUPPORTED_COMMAND = "unsupported_command"
    UNKNOWN_STATION = "unknown_station"
    UNKNOWN_PARAMETER = "unknown_parameter"
    UNKNOWN_UNIT = "unknown_unit"
    NOT_A_NUMBER = "not_a_number"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_FLAG = "unknown_flag"
    BAD_TIMESTAMP = "bad_timestamp"
    NAIVE_TIMESTAMP = "naive_timestamp"
    CLOCK_SKEW = "clock_skew"
    TOO_OLD = "too_old"
    TIME_OUT_OF_RANGE = "time_out_of_range"
    # An exception our code did not expect while handling this message or reading; the detail
    # names the exception type, the traceback is logged (rate-limited).
    INTERNAL_ERROR = "internal_error"
    SINK_REJECTED = "sink_rejected"


class IngestError(Exception):
    """Base of every error raised on the ingestion path."""


class RejectedPayload(IngestError):
    """A message that cannot be used at all; it goes to the dead-letter store whole."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SinkError(IngestError):
    """A failed sink write, with the verdict on retrying it."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        split: bool = False,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
        # 413: the batch is too large for the server; halve it and try again.
        self.split = split


class WalFullError(IngestError):
    """The write-ahead log has reached its disk quota; the caller must stop acknowledging."""
