"""The outbox across outages and restarts, and with its worker threads: nothing lost, nothing waits."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from tests.alerts.notifiers.fake_receiver import (
    Answer,
    FakeClock,
    FakeReceiver,
    Recorded,
    insert_events,
    make_event,
)
from tests.helpers import wait_for

SECRET = "webhook-secret-of-32-bytes-12345"


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    """A running receiver that accepts everything until told otherwise."""
    server = FakeReceiver().start()
    yield server
    server.stop()


def _config(*receivers: FakeReceiver, timeout: float = 1.0, **notify: Any) -> NotifyConfig:
    return NotifyConfig.model_validate(
        {
            "receivers": [
                {
                    "type": "webhook",
                    "name": f"hook{i}",
                    "url": f"{r.url}/hook",
                    "secret": SECRET,
                    "timeout": timeout,
                }
                for i, r in enumerate(receivers)
            ],
            **notify,
        }
    )


class DedupingReceiver:
    """What a receiver that honours idempotency keys does: process each key once, count repeats."""

    def __init__(self) -> None:
        self.processed: Counter[str] = Counter()
        self.down = False
        self.lose_next_answer = False

    def __call__(self, request: Recorded) -> Answer | None:
        if self.down:
            return Answer(503, b"down")
        self.processed.update(request.event_keys())
        if self.lose_next_answer:  # processed, but the answer never reaches the sender
            self.lose_next_answer = False
            return Answer(drop=True)
        return None

    @property
    def unique(self) -> set[str]:
        return set(self.processed)


def test_long_outage_across_a_restart_delivers_every_key_once(tmp_path: Path, receiver: FakeReceiver) -> None:
    """Down for hours (refused, then 503), a restart, an answer lost: every key arrives, each processed once."""
    db = tmp_path / "alerts.db"
    clock = FakeClock()
    config = _config(receiver, retry={"max_age": "P2D"})
    dedup = DedupingReceiver()
    receiver.responder = dedup
    port = receiver.port
    receiver.stop()  # connection refused
    keys = [make_event(n).key for n in range(30)]

    first = NotificationDispatcher(config, db, clock=clock, rng=random.Random(1))
    insert_events(db, [make_event(n) for n in range(10)], created=clock())
    for hour in range(3):
        if hour == 1:
            insert_events(db, [make_event(n) for n in range(10, 20)], created=clock())
        for _ in range(12):
            first.run_once(clock.advance(300))
    assert first.stats()["hook0"]["pending"] == 20
    first.stop(1.0)

    insert_events(db, [make_event(n) for n in range(20, 30)], created=clock())  # while the outbox is down
    receiver = FakeReceiver(port=port).start()
    receiver.responder = dedup
    dedup.down = True
    second = NotificationDispatcher(config, db, clock=clock, rng=random.Random(2))
    for _ in range(6):
        second.run_once(clock.advance(300))
    dedup.down = False
    dedup.lose_next_answer = True
    for _ in range(40):
        second.run_once(clock.advance(300))
        if second.stats()["hook0"]["pending"] == 0:
            break

    assert dedup.unique == set(keys)
    assert len(dedup.unique) == 30
    repeats = {key: n for key, n in dedup.processed.items() if n > 1}
    assert repeats == {"a0:1": 2}  # only the message whose answer was lost came twice
    stats = second.stats()["hook0"]
    assert (stats["delivered"], stats["pending"], stats["failed"]) == (30, 0, 0)
    second.stop(1.0)
    receiver.stop()


def test_worker_threads_deliver_and_resume_after_restart(tmp_path: Path, receiver: FakeReceiver) -> None:
    """Started, the outbox delivers as events arrive; stopped mid-outage, a new one finishes the work."""
    db = tmp_path / "alerts.db"
    config = _config(
        receiver, poll_interval="PT0.05S", retry={"initial_delay": "PT0.01S", "max_delay": "PT0.05S"}
    )
    dedup = DedupingReceiver()
    receiver.responder = dedup

    first = NotificationDispatcher(config, db)
    first.start()
    insert_events(db, [make_event(n) for n in range(5)], created=datetime.now(UTC))
    first.wake()
    wait_for(lambda: len(dedup.unique) == 5, "5 keys processed", 5.0)
    dedup.down = True
    insert_events(db, [make_event(n) for n in range(5, 10)], created=datetime.now(UTC))
    first.wake()
    wait_for(lambda: any(r.answer.status == 503 for r in receiver.requests), "a 503 answered", 5.0)
    first.stop(2.0)
    assert first.stats()["hook0"]["pending"] == 5

    dedup.down = False
    second = NotificationDispatcher(config, db)
    second.start()
    wait_for(lambda: len(dedup.unique) == 10, "10 keys processed", 5.0)
    wait_for(lambda: second.stats()["hook0"]["delivered"] == 10, "10 delivered", 5.0)
    second.stop(2.0)
    assert max(dedup.processed.values()) == 1


def test_a_hanging_receiver_does_not_delay_another(tmp_path: Path, receiver: FakeReceiver) -> None:
    """While one receiver hangs on its first message, the other gets every event meanwhile."""
    # The hanging answer outlasts any wait below: hook1 must finish while hook0 is still stuck.
    hanging = FakeReceiver(Answer(200, b"late", delay=300.0)).start()
    dispatcher = NotificationDispatcher(
        _config(hanging, receiver, timeout=300.0, poll_interval="PT0.05S"), tmp_path / "alerts.db"
    )
    try:
        dispatcher.start()
        insert_events(tmp_path / "alerts.db", [make_event(n) for n in range(3)], created=datetime.now(UTC))
        dispatcher.wake()

        receiver.wait_for(3, timeout=30.0)
        wait_for(lambda: dispatcher.stats()["hook1"]["delivered"] == 3, "3 delivered by hook1", 30.0)
        assert len(hanging.requests) == 1  # still stuck on its first message
        assert dispatcher.stats()["hook0"]["pending"] == 3
    finally:
        hanging.stop()  # releases the hanging request, so the worker can stop
        dispatcher.stop(5.0)
