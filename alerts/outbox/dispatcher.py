"""The dispatcher: the outbox's threads, its start-up checks and its operator API."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import structlog

from alerts import ratelimit
from alerts.notifiers import NotifierConfig, make_notifier
from alerts.notify_config import NotifyConfig
from alerts.outbox import intake, report, schema
from alerts.outbox.intake import DeliveryState
from alerts.outbox.worker import Worker
from alerts.routing import Router
from config.files import make_private_dir
from config.times import ns, to_ns
from ingest.routes import BadRequest, Handler, Request, int_param, str_param

log = structlog.get_logger(__name__)

PRUNE_EVERY: Final = timedelta(hours=1)


class NotificationDispatcher:
    """Routes the engine's events to receivers and delivers them; see the package docstring."""

    def __init__(
        self,
        config: NotifyConfig,
        db_path: Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        http_timeout: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Open (creating if need be) the outbox tables; `http_timeout` caps every receiver's timeout."""
        self.config = config
        self._db_path = Path(db_path)
        make_private_dir(self._db_path.parent)
        self._clock = clock
        self._router = Router(config.routes, [r.name for r in config.receivers], config.default_receivers)
        self._stop = threading.Event()
        self._route_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_prune_ns = 0
        self._conn = schema.connect(self._db_path)  # the caller's: run_once, stats and start-up
        self._conn_lock = threading.Lock()
        schema.create(self._conn)
        rng = rng or random.Random()
        self._workers: dict[str, Worker] = {}
        for receiver in config.receivers:
            capped = _capped(receiver, http_timeout)
            worker = Worker(
                capped, make_notifier(capped), settings=config, clock=clock, rng=rng, stop=self._stop
            )
            worker.load(self._conn)
            self._workers[receiver.name] = worker
        self._resending = frozenset(
            n for n, w in self._workers.items() if w.notifier.resend_interval is not None
        )
        self._check_start_up()

    def _check_start_up(self) -> None:
        for receivers, problem in self.config.start_up_warnings():
            log.warning("notify_config_warning", receivers=receivers, problem=problem)
        pending = self._conn.execute(
            "SELECT receiver, COUNT(*) FROM deliveries WHERE state = ? GROUP BY receiver",
            (DeliveryState.PENDING,),
        ).fetchall()
        for name, count in pending:
            if name not in self._workers:  # kept, in case the receiver comes back to the configuration
                log.warning("notification_receiver_removed", receiver=name, pending=count)

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._route_loop, name="notify-router", daemon=True)]
        self._threads += [
            threading.Thread(target=self._deliver_loop, args=(w,), name=f"notify-{w.name}", daemon=True)
            for w in self._workers.values()
        ]
        for thread in self._threads:
            thread.start()
        log.info("notifications_started", receivers=list(self._workers), db=str(self._db_path))

    def stop(self, timeout: float) -> None:
        """Stop the workers (a send in flight gets until `timeout`); pending deliveries stay pending."""
        self._stop.set()
        self._route_wake.set()
        for worker in self._workers.values():
            worker.wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in self._threads if t.is_alive()]
        if busy:
            log.warning("notification_workers_still_busy", threads=busy)
        for worker in self._workers.values():
            worker.notifier.close()
        with self._conn_lock:
            self._conn.close()
        log.info("notifications_stopped")

    def wake(self) -> None:
        """Route new events now rather than at the next poll (the engine calls it after a write)."""
        self._route_wake.set()

    def run_once(self, now: datetime) -> None:
        """Route new events and attempt every due delivery, in the caller's thread.

        For tests with a fake clock; do not mix it with `start()`. Times after `now` (an answer,
        the next part) are read from the dispatcher's clock.
        """
        with self._conn_lock:
            self._route(self._conn, now)
            for worker in self._workers.values():
                worker.round(self._conn, now)

    def _route(self, conn: sqlite3.Connection, now: datetime) -> int:
        now_ns = to_ns(now)
        routed = intake.route_new(conn, self._router, self._resending, now_ns)
        if now_ns >= self._next_prune_ns:
            self._next_prune_ns = now_ns + ns(PRUNE_EVERY)
            intake.prune(conn, now_ns, ns(self.config.retention))
            ratelimit.prune(conn, now_ns)
        return routed

    def _route_loop(self) -> None:
        with closing(schema.connect(self._db_path)) as conn:
            while not self._stop.is_set():
                try:
                    if self._route(conn, self._clock()):
                        for worker in self._workers.values():
                            worker.wake.set()
                except (sqlite3.Error, OSError):
                    log.exception("notification_routing_failed")
                self._route_wake.wait(self.config.poll_interval.total_seconds())
                self._route_wake.clear()

    def _deliver_loop(self, worker: Worker) -> None:
        poll = self.config.poll_interval.total_seconds()
        with closing(schema.connect(self._db_path)) as conn:
            while not self._stop.is_set():
                try:
                    wait = worker.round(conn, self._clock())
                except (sqlite3.Error, OSError):
                    log.exception("notification_delivery_loop_failed", receiver=worker.name)
                    wait = poll
                worker.wake.wait(min(wait, poll))
                worker.wake.clear()

    # --- reading ----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Per receiver: type, pending, delivered, failed, skipped, firing, failing, last error."""
        with closing(schema.connect(self._db_path)) as conn:
            return report.stats(conn, {name: w.kind for name, w in self._workers.items()})

    def deliveries(
        self,
        *,
        receiver: str | None = None,
        state: str | None = None,
        key: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Delivery records, oldest first, with their event's identity."""
        with closing(schema.connect(self._db_path)) as conn:
            return report.deliveries(
                conn, receiver=receiver, state=state, key=key, after_id=after_id, limit=limit
            )

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("GET", "/api/v1/notifications"): self._notifications_api}

    def _notifications_api(self, request: Request) -> tuple[int, Any]:
        state = str_param(request.query, "state")
        if state is not None and state not in set(DeliveryState):
            raise BadRequest(f"state must be one of {', '.join(DeliveryState)}")
        rows = self.deliveries(
            receiver=str_param(request.query, "receiver"),
            state=state,
            key=str_param(request.query, "key", max_length=300),
            after_id=int_param(request.query, "after_id", 0, 0, 2**62),
            limit=int_param(request.query, "limit", 100, 1, 1000),
        )
        return 200, {"notifications": rows, "receivers": self.stats()}


def _capped(config: NotifierConfig, http_timeout: float | None) -> NotifierConfig:
    if http_timeout is None:
        return config
    return config.model_copy(update={"timeout": min(config.timeout, timedelta(seconds=http_timeout))})
