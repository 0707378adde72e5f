"""The gateway's internal events: each bumps its Prometheus metric and writes its log line.

Connections open and close at info (a close other than by the peer or a stop at warning, with its
`reason`); each packet is a debug line and a count by `outcome`: `ok`, `wrong_password`,
`unknown_mn` (parsed, judged against the registry), a parser reason (`bad_crc`, `malformed`,
`bad_length`, `too_large`), `truncated`, `oversized`, `unframed` for a run of garbage, or
`internal_error` (a bug: handed off unanswered, reported through `ingest.internal_errors`).
Refusals are counted, and logged once per episode rather than each time: a connection past a
limit (once until the peer, or the full gateway, closes a connection), a password lockout (once
when it starts; never the password), the packets refused during a lockout (counted only).
Loggers' clocks (`clock`): each correction sent (at warning when the clock drifted, info when the
logger asked), each time a logger reports (1011) and each answer to the gateway's requests at info;
every clock error measured is observed in a histogram, every time-shifted packet counted.
"""

from __future__ import annotations

from typing import Final

import structlog
from prometheus_client import Counter, Gauge, Histogram

from ingest import internal_errors
from ingest.sources.hj212_gateway.clock import ClockNote

log = structlog.get_logger("ingest.sources.hj212_gateway")

# Closes that are part of normal operation; the others are logged as warnings.
_ROUTINE_CLOSES: Final = frozenset({"peer_closed", "server_stopping"})

CONNECTIONS: Final = Counter(
    "ecowatch_hj212_connections_total", "Logger connections, by outcome (accepted, refused).", ["outcome"]
)
CONNECTIONS_OPEN: Final = Gauge("ecowatch_hj212_connections_open", "Logger connections open now.")
CONNECTIONS_CLOSED: Final = Counter(
    "ecowatch_hj212_connections_closed_total", "Logger connections closed, by reason.", ["reason"]
)
CONNECTIONS_REFUSED: Final = Counter(
    "ecowatch_hj212_connections_refused_total",
    "Logger connections closed at once, by the limit they hit (max_connections, max_connections_per_peer).",
    ["reason"],
)
TIMEOUTS: Final = Counter(
    "ecowatch_hj212_timeouts_total", "Connections closed by a timeout, by kind.", ["kind"]
)
PACKETS: Final = Counter(
    "ecowatch_hj212_packets_total", "Frames and garbage runs handed off, by outcome.", ["outcome"]
)
PACKETS_REFUSED: Final = Counter(
    "ecowatch_hj212_packets_refused_total",
    "Packets dropped without hand-off or answer, by reason (password_lockout).",
    ["reason"],
)
PASSWORD_LOCKOUTS: Final = Counter(
    "ecowatch_hj212_password_lockouts_total", "Lockouts of an MN and peer after repeated wrong passwords."
)
BYTES_RECEIVED: Final = Counter("ecowatch_hj212_bytes_received_total", "Bytes read from loggers.")
GARBAGE_BYTES: Final = Counter(
    "ecowatch_hj212_garbage_bytes_total", "Bytes outside any packet (handed off on hj212/_unframed)."
)
RESPONSES: Final = Counter(
    "ecowatch_hj212_responses_total",
    "Packets sent to loggers, by command (answers 9011, 9012, 9013, 9014; requests 1012, 1011).",
    ["cn"],
)
PACKETS_CONSUMED: Final = Counter(
    "ecowatch_hj212_packets_consumed_total",
    "Loggers' answers to the gateway's own requests (9011, 9012, 1011), read and not handed off.",
    ["cn"],
)
CLOCK_CORRECTIONS: Final = Counter(
    "ecowatch_hj212_clock_corrections_total",
    "Loggers' clocks set (CN 1012), by trigger: request (the logger's 1013) or drift.",
    ["trigger"],
)
CLOCK_ANSWERS: Final = Counter(
    "ecowatch_hj212_clock_answers_total",
    "Loggers' answers to the gateway's 1012 and 1011, by request, answer and result (ok: QnRtn or "
    "ExeRtn 1; refused: any other code, which the log line gives).",
    ["request", "answer", "result"],
)
CLOCK_ERROR: Final = Histogram(
    "ecowatch_hj212_clock_error_seconds",
    "How far loggers' clocks are from the platform's (absolute), as their packets and 1011 show.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600, 86400),
)
TIME_SHIFTED: Final = Counter(
    "ecowatch_hj212_time_shifted_packets_total",
    "Data uploads handed off with their times shifted by their logger's clock error.",
)
HANDOFF_PENDING: Final = Gauge(
    "ecowatch_hj212_handoff_pending", "Messages the MQTT handoff holds until the broker acknowledges them."
)
HANDOFF_FAILED: Final = Counter(
    "ecowatch_hj212_handoff_failed_total", "Messages the broker refused or the handoff lost at close."
)


def gateway_started(host: str, port: int) -> None:
    log.info("hj212_gateway_started", host=host, port=port)


def gateway_stopped(connections: int) -> None:
    log.info("hj212_gateway_stopped", connections_closed=connections)


def connection_opened(peer: str, open_now: int) -> None:
    CONNECTIONS.labels("accepted").inc()
    CONNECTIONS_OPEN.inc()
    log.info("hj212_connection_opened", peer=peer, connections=open_now)


def connection_refused(peer: str, reason: str, *, first: bool) -> None:
    """A connection closed at once; `first` of its episode is logged, the rest only counted."""
    CONNECTIONS.labels("refused").inc()
    CONNECTIONS_REFUSED.labels(reason).inc()
    if first:
        log.warning("hj212_connection_refused", peer=peer, reason=reason)


def connection_closed(peer: str, reason: str, *, duration_s: float, packets: int, bytes_in: int) -> None:
    CONNECTIONS_OPEN.dec()
    CONNECTIONS_CLOSED.labels(reason).inc()
    if reason.endswith("_timeout"):
        TIMEOUTS.labels(reason.removesuffix("_timeout")).inc()
    level = log.info if reason in _ROUTINE_CLOSES else log.warning
    level(
        "hj212_connection_closed",
        peer=peer,
        reason=reason,
        duration_s=round(duration_s, 3),
        packets=packets,
        bytes=bytes_in,
    )


def bytes_received(count: int) -> None:
    BYTES_RECEIVED.inc(count)


def packet_handed_off(peer: str, outcome: str, topic: str, size: int, cn: str | None = None) -> None:
    PACKETS.labels(outcome).inc()
    if outcome == "unframed":
        GARBAGE_BYTES.inc(size)
    log.debug("hj212_packet", peer=peer, outcome=outcome, topic=topic, bytes=size, cn=cn)


def packet_refused(reason: str) -> None:
    PACKETS_REFUSED.labels(reason).inc()


def password_lockout(mn: str, peer: str, *, failures: int, window_s: float, lockout_s: float) -> None:
    PASSWORD_LOCKOUTS.inc()
    log.warning(
        "hj212_password_lockout",
        mn=mn,
        peer=peer,
        failures=failures,
        window_s=window_s,
        lockout_s=lockout_s,
    )


def internal_error(stage: str, peer: str, exc: BaseException) -> None:
    """An exception our code did not expect, contained to one packet or connection."""
    internal_errors.report(stage, exc, peer=peer)


def responses_sent(commands: list[str]) -> None:
    for cn in commands:
        RESPONSES.labels(cn).inc()


def handoff_pending(count: int) -> None:
    HANDOFF_PENDING.set(count)


def handoff_failed() -> None:
    HANDOFF_FAILED.inc()


def packet_consumed(peer: str, cn: str | None) -> None:
    PACKETS_CONSUMED.labels(cn or "").inc()
    log.debug("hj212_packet", peer=peer, outcome="consumed", cn=cn)


def clock(mn: str, peer: str, note: ClockNote) -> None:
    """What a packet told about its logger's clock, and what the gateway does about it."""
    if note.error_s is not None:
        CLOCK_ERROR.observe(abs(note.error_s))
    error_s = None if note.error_s is None else round(note.error_s, 3)
    if note.shift_s:
        TIME_SHIFTED.inc()
    if note.correction is not None:
        CLOCK_CORRECTIONS.labels(note.correction).inc()
        level = log.warning if note.correction == "drift" else log.info
        level(
            "hj212_clock_correction",
            mn=mn,
            peer=peer,
            trigger=note.correction,
            error_s=error_s,
            shift_s=note.shift_s,
        )
    if note.logger_time is not None:
        log.info("hj212_logger_clock", mn=mn, peer=peer, logger_time=note.logger_time, error_s=error_s)
    if note.answer is not None:
        request, answer, result = note.answer
        CLOCK_ANSWERS.labels(request, answer, "ok" if result == "1" else "refused").inc()
        log.info("hj212_clock_answer", mn=mn, peer=peer, request=request, answer=answer, result=result[:16])
