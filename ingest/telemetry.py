"""Logs and metrics, set up once.

structlog: contextvars merge, level filter, UTC ISO time, secret redaction, exception formatting;
JSON lines in daemon mode (or when stderr is not a terminal), a readable console on a terminal.
Prometheus metrics are module-level objects here, so every stage counts the same way and the
counters reconcile (received = processed + pending; accepted = written + pending per sink).
"""

from __future__ import annotations

import logging
import sys
from typing import Final, Literal

import structlog
from prometheus_client import Counter, Gauge, Histogram
from structlog.typing import EventDict, WrappedLogger

SECRET_KEYS: Final = frozenset({"password", "token", "secret", "authorization", "webhook_key", "pw"})

LogFormat = Literal["auto", "json", "console"]


def redact_secrets(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    for key in SECRET_KEYS & event.keys():
        event[key] = "<redacted>"
    return event


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Configure structlog for the process; safe to call more than once."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        # Plain tracebacks: the default (rich, with every frame's locals) can take minutes on a
        # hostile payload held in a local.
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


# --- metrics -------------------------------------------------------------------------------------
MESSAGES_RECEIVED: Final = Counter("ecowatch_messages_received_total", "MQTT messages received.")
MESSAGES_LOGGED: Final = Counter(
    "ecowatch_messages_logged_total", "Messages appended durably to the raw log and acknowledged."
)
MESSAGES_PROCESSED: Final = Counter(
    "ecowatch_messages_processed_total",
    "Messages decoded and validated, by outcome (accepted: all readings good; partial; rejected).",
    ["outcome"],
)
READINGS_ACCEPTED: Final = Counter("ecowatch_readings_accepted_total", "Readings that passed validation.")
READINGS_REJECTED: Final = Counter(
    "ecowatch_readings_rejected_total", "Rejections sent to the dead-letter store, by reason.", ["reason"]
)
SINK_WRITTEN: Final = Counter("ecowatch_sink_readings_written_total", "Readings stored by a sink.", ["sink"])
SINK_FAILURES: Final = Counter(
    "ecowatch_sink_write_failures_total",
    "Failed sink writes (each retried or dead-lettered).",
    ["sink", "reason"],
)
SINK_DEAD_LETTERED: Final = Counter(
    "ecowatch_sink_readings_dead_lettered_total", "Readings the database refused (400/422).", ["sink"]
)
SINK_BATCH_SECONDS: Final = Histogram(
    "ecowatch_sink_batch_seconds",
    "Duration of one sink write.",
    ["sink"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SINK_UP: Final = Gauge(
    "ecowatch_sink_up", "1 when the sink's last write succeeded or it is within its retry budget.", ["sink"]
)
WAL_PENDING: Final = Gauge(
    "ecowatch_wal_pending_records", "Records a consumer has not committed yet.", ["log", "consumer"]
)
WAL_USAGE: Final = Gauge("ecowatch_wal_usage_bytes", "Bytes on disk of a write-ahead log.", ["log"])
WAL_FULL: Final = Gauge("ecowatch_wal_full", "1 while the raw log is at its quota and acks are held.")
WAL_HELD: Final = Gauge(
    "ecowatch_wal_held_messages", "Messages received but not yet logged because the log is full."
)
MQTT_CONNECTED: Final = Gauge("ecowatch_mqtt_connected", "1 while connected to the broker.")
MQTT_CONNECTS: Final = Counter("ecowatch_mqtt_connects_total", "Successful connections to the broker.")
MQTT_DISCONNECTS: Final = Counter("ecowatch_mqtt_disconnects_total", "Disconnections, by reason.", ["reason"])
DEADLETTERS_STORED: Final = Counter(
    "ecowatch_deadletters_stored_total", "Rows written to the dead-letter store."
)
DEADLETTERS_BYTES: Final = Gauge(
    "ecowatch_deadletters_bytes", "Bytes the dead-letter store uses (its pages in use)."
)
DEADLETTERS_QUOTA_BYTES: Final = Gauge(
    "ecowatch_deadletters_quota_bytes", "The dead-letter store's quota (`deadletter.max_bytes`)."
)
DEADLETTERS_MESSAGES: Final = Gauge(
    "ecowatch_deadletters_messages", "Rejected messages stored, each payload once."
)
DEADLETTERS_ROWS: Final = Gauge("ecowatch_deadletters_rows", "Rejection rows stored.")
DEADLETTERS_FULL: Final = Gauge(
    "ecowatch_deadletters_full",
    "1 while the dead-letter store is at its quota: rejections are counted by reason, not stored.",
)
DEADLETTERS_UNSTORED: Final = Counter(
    "ecowatch_deadletters_unstored_total",
    "Rejections counted but not stored as rows, by reason and cause (row_cap: past "
    "max_rows_per_message; full: at the quota; error: the store failed).",
    ["reason", "cause"],
)
DEADLETTERS_PRUNED: Final = Counter(
    "ecowatch_deadletters_pruned_messages_total", "Dead-letter messages deleted by the retention."
)
