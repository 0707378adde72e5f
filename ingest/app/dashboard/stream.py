"""The live stream: GET /api/v1/stream, server-sent events carrying snapshots of the alert state.

Every `stream_interval` a stream looks at the current snapshot and sends

    event: update
    data: {"at", "alerts_enabled", "stations": [...], "alerts": [...], "compliance": {...},
           "silences": [...], "incidents": [...], "problems": [...]}

when it changed since its last one, or a `: ping` comment when not (which is also how a stream
learns that its client went away: the write fails, or makes no progress for `http.send_timeout`
because the client stopped reading, and the server closes the iterator). Snapshots come from
one function the daemon passes in, the alert service's `snapshot()` (`alerts.api.AlertSnapshot`):
the answers of /api/v1/stations, /api/v1/alerts, /api/v1/compliance and /api/v1/silences without
parameters and of /api/v1/incidents?status=all (open and kept closed incidents), so they have
exactly the shapes of that API; one snapshot is shared by all streams
for half an interval. Without the alert engine, stations come from the registry, unclassified.
A part that fails is left out and named in `problems`.

Each open stream holds one HTTP thread, so at most `max_streams` are open: more are answered 503.
`close()` ends every stream at its next tick (daemon shutdown).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final

import orjson
import structlog

from alerts.api import AlertSnapshot
from config.registry import Registry
from ingest.routes import EventStream, Request

log = structlog.get_logger(__name__)

# The parts of a snapshot that come from the alert engine.
# (`incidents` is left out of both fallbacks: the page reads a missing part as none.)
ALERT_PARTS: Final = ("stations", "alerts", "compliance", "silences")
# The browser waits this long before reconnecting a dropped stream (the `retry:` field).
RECONNECT_MS: Final = 3000


class LiveFeed:
    """The current snapshot, recomputed at most every `max_age` seconds."""

    def __init__(
        self,
        registry: Registry,
        alert_state: Callable[[], AlertSnapshot] | None,
        clock: Callable[[], datetime],
        max_age: float,
    ) -> None:
        self._registry = registry
        self._alert_state = alert_state
        self._clock = clock
        self._max_age = max_age
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes, bytes] | None = None

    @property
    def alerts_enabled(self) -> bool:
        return self._alert_state is not None

    def current(self) -> tuple[bytes, bytes]:
        """(content, message): the snapshot without its time, to compare, and the whole event."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._max_age:
                content = self.snapshot()
                message = orjson.dumps({"at": self._clock().isoformat(), **content})
                self._cached = (now, orjson.dumps(content), message)
            return self._cached[1], self._cached[2]

    def snapshot(self) -> dict[str, Any]:
        if self._alert_state is None:
            return {
                "alerts_enabled": False,
                "problems": [],
                **dict.fromkeys(ALERT_PARTS),
                "stations": self._registry_stations(),
            }
        try:
            state: dict[str, Any] = {**self._alert_state()}
        except Exception:
            log.exception("dashboard_snapshot_failed")
            state = {"problems": ["the alert state could not be read"], **dict.fromkeys(ALERT_PARTS)}
        return {"alerts_enabled": True, **state}

    def _registry_stations(self) -> list[dict[str, Any]]:
        return [
            {
                "id": s.id,
                "name": s.name,
                "district": s.district,
                "basin": s.basin,
                "river": s.river,
                "water_body": s.water_body,
                "kinds": list(s.kinds),
                "target_class": s.target_class.value,
                "class": None,
                "compliant": None,
                "primary_pollutants": [],
                "last_reading_at": None,
                "active_alerts": [],
            }
            for s in self._registry.values()
        ]


class StreamHub:
    """Opens streams within the limit and ends them all on `close()`."""

    def __init__(self, feed: LiveFeed, interval: float, max_streams: int) -> None:
        self._feed = feed
        self._interval = interval
        self._slots = threading.BoundedSemaphore(max_streams)
        self._closed = threading.Event()

    def open(self, _request: Request) -> tuple[int, Any]:
        if self._closed.is_set():
            return 503, {"error": "the daemon is stopping"}
        if not self._slots.acquire(blocking=False):
            return 503, {"error": "too many open dashboard streams; retry later"}
        return 200, EventStream(_Stream(self._feed, self._interval, self._closed, self._slots.release))

    def close(self) -> None:
        self._closed.set()


class _Stream(Iterator[bytes]):
    """One client's events. Frees its slot when closed (by the server) or collected (never started)."""

    def __init__(
        self, feed: LiveFeed, interval: float, closed: threading.Event, release: Callable[[], None]
    ) -> None:
        self._feed = feed
        self._interval = interval
        self._closed = closed
        self._release: Callable[[], None] | None = release
        self._last: bytes | None = None

    def __next__(self) -> bytes:
        if self._release is None:
            raise StopIteration
        prefix = b""
        if self._last is None:
            prefix = f"retry: {RECONNECT_MS}\n".encode()
        elif self._closed.wait(self._interval):
            self.close()
            raise StopIteration
        content, message = self._feed.current()
        if content == self._last:
            return b": ping\n\n"
        self._last = content
        return prefix + b"event: update\ndata: " + message + b"\n\n"

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __del__(self) -> None:
        self.close()
