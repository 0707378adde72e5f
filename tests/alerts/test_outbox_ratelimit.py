"""Rate limits and digests: the sliding window, pauses, the plan, and the dispatcher not flooding a receiver."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts import ratelimit
from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from alerts.ratelimit import RateLimitConfig, plan
from config.sqlite import immediate_transaction
from tests.alerts.notifiers.fake_receiver import FakeClock, FakeReceiver, insert_events, make_event

SECRET = "webhook-secret-of-32-bytes-12345"
S = 1_000_000_000
TWENTY_A_MINUTE = RateLimitConfig(messages=20, per=timedelta(minutes=1))


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    """A running receiver that accepts everything."""
    server = FakeReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """An autocommit connection to a database holding the rate-limit tables."""
    connection = sqlite3.connect(tmp_path / "rates.db", isolation_level=None)
    with immediate_transaction(connection):
        for ddl in ratelimit.RATE_LIMIT_DDL:
            connection.execute(ddl)
    yield connection
    connection.close()


def _send(conn: sqlite3.Connection, at: float, limit: RateLimitConfig = TWENTY_A_MINUTE) -> bool:
    slot = ratelimit.acquire(conn, "robot", limit, int(at * S), int((at + 5) * S))
    if slot is not None:
        ratelimit.settle(conn, slot, int(at * S))
    return slot is not None


def test_window_never_passes_more_than_the_limit_in_any_window(conn: sqlite3.Connection) -> None:
    """20 a minute: 20 at once, then nothing until the first leaves the window (a bucket would refill)."""
    assert sum(_send(conn, 0.0) for _ in range(25)) == 20
    assert not _send(conn, 3.0)  # a bucket of 20 refilling at 1 per 3 s would pass this one
    assert not _send(conn, 59.9)
    assert ratelimit.wait_ns(conn, "robot", TWENTY_A_MINUTE, int(30 * S)) == 30 * S + 1
    assert _send(conn, 60.001)  # the twenty of t=0 have all left the window
    assert ratelimit.available(conn, "robot", TWENTY_A_MINUTE, int(60.001 * S)) == 19


def test_a_steady_sender_stays_within_every_sliding_window(conn: sqlite3.Connection) -> None:
    """Whatever the pace of attempts, no 60 s span ever holds more than 20 requests."""
    sent = [t / 10 for t in range(0, 6000, 7) if _send(conn, t / 10)]

    assert len(sent) >= 180
    assert max(sum(1 for s in sent if t <= s < t + 60) for t in sent) <= 20


def test_a_slot_counts_until_its_answer_and_from_then(conn: sqlite3.Connection) -> None:
    """A request in flight counts until its timeout; answered late, it counts from its answer."""
    limit = RateLimitConfig(messages=1, per=timedelta(seconds=60))
    slot = ratelimit.acquire(conn, "robot", limit, 0, 10 * S)
    assert slot is not None
    assert (
        ratelimit.acquire(conn, "robot", limit, 65 * S, 70 * S) is None
    )  # its timeout end (10 s) is in the window
    ratelimit.settle(conn, slot, 8 * S)  # the answer came after 8 s

    assert ratelimit.acquire(conn, "robot", limit, 68 * S, 70 * S) is None  # 8 + 60 not yet passed
    assert ratelimit.acquire(conn, "robot", limit, 68 * S + 1, 70 * S) is not None


def test_a_pause_refuses_every_request_until_it_ends(conn: sqlite3.Connection) -> None:
    """A pause blocks the target whatever its window; a shorter later pause does not shorten it."""
    ratelimit.pause(conn, "robot", 600 * S, "errcode 130101")
    ratelimit.pause(conn, "robot", 60 * S, "errcode 130101")

    assert ratelimit.available(conn, "robot", None, 599 * S) == 0
    assert not _send(conn, 599.9)
    assert ratelimit.wait_ns(conn, "robot", TWENTY_A_MINUTE, 100 * S) == 500 * S
    assert _send(conn, 600.0)
    assert ratelimit.available(conn, "other", None, 0) is None  # other targets are not paused


def test_exceeds_compares_burst_and_rate() -> None:
    """A limit exceeds another when it allows a bigger burst or more in the long run."""
    assert RateLimitConfig(messages=21, per=timedelta(minutes=1)).exceeds(TWENTY_A_MINUTE)
    assert RateLimitConfig(messages=20, per=timedelta(seconds=59)).exceeds(TWENTY_A_MINUTE)
    assert not RateLimitConfig(messages=18, per=timedelta(minutes=1)).exceeds(TWENTY_A_MINUTE)
    assert not RateLimitConfig(messages=10, per=timedelta(seconds=30)).exceeds(TWENTY_A_MINUTE)


def test_plan_sends_singles_when_they_fit_else_one_digest() -> None:
    """Due items fitting the slots go one each; more than that go as one digest of at most max_digest."""
    assert plan([1, 2, 3], slots=3, max_digest=10) == [[1], [2], [3]]
    assert plan([1, 2, 3], slots=None, max_digest=10) == [[1], [2], [3]]
    assert plan([1, 2, 3, 4], slots=3, max_digest=10) == [[1, 2, 3, 4]]
    assert plan(list(range(30)), slots=1, max_digest=10) == [list(range(10))]
    assert plan([1, 2], slots=0, max_digest=10) == []
    assert plan([], slots=5, max_digest=10) == []


def _dispatcher(
    tmp_path: Path, receiver: FakeReceiver, clock: FakeClock, **extra: Any
) -> NotificationDispatcher:
    hook = {
        "type": "webhook",
        "name": "hook",
        "url": receiver.url,
        "secret": SECRET,
        "rate_limit": {"messages": 3, "per": "PT1M"},
    }
    config = NotifyConfig.model_validate({"receivers": [hook], **extra})
    return NotificationDispatcher(config, tmp_path / "alerts.db", clock=clock, rng=random.Random(3))


def test_flood_becomes_a_digest_and_the_window_is_respected(tmp_path: Path, receiver: FakeReceiver) -> None:
    """3 a minute: two singles, then ten events as one digest, then nothing until the minute has passed;
    then the window is empty again and the two waiting go one by one."""
    db = tmp_path / "alerts.db"
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, receiver, clock)

    insert_events(db, [make_event(n) for n in range(2)])
    dispatcher.run_once(clock())
    insert_events(db, [make_event(n) for n in range(2, 12)])
    dispatcher.run_once(clock())
    insert_events(db, [make_event(n) for n in range(12, 14)])
    dispatcher.run_once(clock.advance(30))
    dispatcher.run_once(clock.advance(29))
    assert len(receiver.requests) == 3
    dispatcher.run_once(clock.advance(2))  # the first request has left the window

    bodies = [r.json() for r in receiver.requests]
    assert [b.get("type", "event") for b in bodies] == ["event", "event", "digest", "event", "event"]
    assert bodies[2]["keys"] == [f"a{n}:1" for n in range(2, 12)]
    assert [bodies[3]["key"], bodies[4]["key"]] == ["a12:1", "a13:1"]
    assert receiver.requests[2].header("webhook-id") == bodies[2]["key"]
    assert sorted(receiver.accepted_keys()) == sorted(f"a{n}:1" for n in range(14))
    assert dispatcher.stats()["hook"]["delivered"] == 14
    dispatcher.stop(1.0)


def test_digest_size_is_capped_and_the_rest_follows(tmp_path: Path, receiver: FakeReceiver) -> None:
    """With max_digest_events 5, twelve events go as digests of 5, 5 and 2, one slot each."""
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, receiver, clock, max_digest_events=5)
    insert_events(tmp_path / "alerts.db", [make_event(n) for n in range(12)])

    for _ in range(3):
        dispatcher.run_once(clock.advance(20))

    assert [len(r.event_keys()) for r in receiver.requests] == [5, 5, 2]
    assert len(set(receiver.accepted_keys())) == 12
    dispatcher.stop(1.0)


def test_window_and_pause_survive_a_restart(tmp_path: Path, receiver: FakeReceiver) -> None:
    """A new dispatcher on the same database honours the last minute's requests and a running pause."""
    db = tmp_path / "alerts.db"
    clock = FakeClock()
    first = _dispatcher(tmp_path, receiver, clock)
    insert_events(db, [make_event(n) for n in range(3)])
    first.run_once(clock())
    assert len(receiver.requests) == 3  # the window is full

    second = _dispatcher(tmp_path, receiver, clock)  # what kill -9 and a restart amount to
    insert_events(db, [make_event(3)])
    second.run_once(clock.advance(59))
    assert len(receiver.requests) == 3
    second.run_once(clock.advance(2))
    assert len(receiver.requests) == 4
    first.stop(1.0)
    second.stop(1.0)
