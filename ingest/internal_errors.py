"""Exceptions our code did not expect, contained to the message or reading that raised them.

The rule of the ingest path: one message's failure is that message's dead letter. Where a stage
handles one message, one reading or one batch of readings for a store, it catches any exception
at that unit, turns it into an `internal_error` rejection naming the exception type, and the
stream moves on; retrying is only for transport faults, never for an error that the same input
raises again. The traceback goes to the log, at most `TRACEBACKS_PER_MINUTE` per place a minute,
so a flood of one bad input cannot flood the log; every occurrence is counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

import structlog
from prometheus_client import Counter

log = structlog.get_logger(__name__)

TRACEBACKS_PER_MINUTE: Final = 5

INTERNAL_ERRORS: Final = Counter(
    "ecowatch_internal_errors_total",
    "Unexpected exceptions contained to one message, reading or batch, by stage and exception type.",
    ["stage", "exception"],
)


def describe(exc: BaseException) -> str:
    """The dead letter's detail: the exception type and its message, short."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


class _TracebackLimiter:
    """At most `limit` tracebacks per stage in each minute; the rest are only counted."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, int]] = {}  # stage -> (start, logged, suppressed)

    def allow(self, stage: str) -> tuple[bool, int]:
        """Whether to log this one, and how many were suppressed in the window that just ended."""
        now = self._clock()
        with self._lock:
            start, logged, suppressed = self._windows.get(stage, (now, 0, 0))
            ended = 0
            if now - start >= 60.0:
                start, logged, ended, suppressed = now, 0, suppressed, 0
            if logged < self._limit:
                self._windows[stage] = (start, logged + 1, suppressed)
                return True, ended
            self._windows[stage] = (start, logged, suppressed + 1)
            return False, ended


_limiter = _TracebackLimiter(TRACEBACKS_PER_MINUTE)


def report(stage: str, exc: BaseException, **context: object) -> str:
    """Count and (rate-limited) log an exception contained at `stage`; returns the detail to store."""
    INTERNAL_ERRORS.labels(stage, type(exc).__name__).inc()
    allowed, suppressed = _limiter.allow(stage)
    if suppressed:
        log.warning("internal_errors_suppressed", stage=stage, suppressed=suppressed)
    if allowed:
        log.error("internal_error", stage=stage, exc_info=exc, **context)
    return describe(exc)
