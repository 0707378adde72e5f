"""Errors of the ingestion path, each carrying a reason a machine can count.

IngestError
├── RejectedPayload      a whole message cannot be used (reason: RejectReason)
├── SinkError            a sink write failed (reason: SinkReason, retryable, retry_after, split)
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
    # Cluster mode: the stations stream refused the message for good (JetStream answered 400), so
    # the intake could not move it from the MQTT listener's store.
    STREAM_REJECTED = "stream_rejected"


class SinkReason(StrEnum):
    """Why a sink write failed: the `ecowatch_sink_write_failures_total` label and log field."""

    # The server refuses these points for good (400, 422, or a value no encoding can carry):
    # the delivery loop narrows the batch down to them and dead-letters them.
    REJECTED = "rejected"
    TOO_LARGE = "too_large"  # 413: the loop halves the batch
    THROTTLED = "throttled"  # 429
    SERVER_ERROR = "server_error"  # 500 and other 5xx
    UNAVAILABLE = "unavailable"  # 502, 503, 504
    # A problem of configuration, not of the points: retried until an operator fixes it.
    UNAUTHORIZED = "unauthorized"  # 401
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not_found"  # 404, or the configured database does not exist
    UNEXPECTED_STATUS = "unexpected_status"  # 1xx, 3xx, other 4xx
    UNEXPECTED_ANSWER = "unexpected_answer"  # a 2xx whose body is not what was asked for
    # No answer at all (config.http.NoAnswer): nothing is known about the write.
    CONNECTION_FAILED = "connection_failed"
    TIMEOUT = "timeout"
    TLS = "tls"
    NETWORK = "network"
    STORAGE = "storage"  # the local file (the SQLite sink): locked, I/O, disk full
    ALERT_DB = "alert_db"  # the alert engine's database (the engine consumes the log like a sink)
    # The sink raised something that is no verdict (a bug, an input it cannot handle); the
    # detail names the exception type, the traceback is logged (rate-limited).
    INTERNAL_ERROR = "internal_error"


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
        reason: SinkReason,
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
