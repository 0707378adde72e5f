"""Rate limits and digests: the token bucket, the plan, and the dispatcher not flooding a receiver."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from alerts.ratelimit import RateLimitConfig, TokenBucket, plan
from tests.alerts.notifiers.fake_receiver import FakeClock, FakeReceiver, insert_events, make_event

SECRET = "webhook-secret-of-32-bytes-12345"


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    """A running receiver that accepts everything."""
    server = FakeReceiver().start()
    yield server
    server.stop()


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    """20 per minute: 20 at once, then one token every 3 s."""
    bucket = TokenBucket(RateLimitConfig(messages=20, per=timedelta(minutes=1)), now=0.0)

    assert sum(bucket.take(0.0) for _ in range(25)) == 20
    assert bucket.wait(0.0) == pytest.approx(3.0)
    assert not bucket.take(2.9)
    assert bucket.take(3.0)
    assert bucket.available(3.0 + 600) == 20  # never more than the burst


def test_bucket_ignores_a_clock_stepped_back() -> None:
    """A wall clock going backwards neither mints nor burns tokens."""
    bucket = TokenBucket(RateLimitConfig(messages=2, per=timedelta(seconds=10)), now=100.0)
    bucket.take(100.0)
    bucket.take(100.0)

    assert bucket.available(50.0) == 0
    assert bucket.available(105.0) == 1


def test_plan_sends_singles_when_they_fit_else_one_digest() -> None:
    """Due items fitting the tokens go one each; more than that go as one digest of at most max_digest."""
    assert plan([1, 2, 3], tokens=3, max_digest=10) == [[1], [2], [3]]
    assert plan([1, 2, 3], tokens=None, max_digest=10) == [[1], [2], [3]]
    assert plan([1, 2, 3, 4], tokens=3, max_digest=10) == [[1, 2, 3, 4]]
    assert plan(list(range(30)), tokens=1, max_digest=10) == [list(range(10))]
    assert plan([1, 2], tokens=0, max_digest=10) == []
    assert plan([], tokens=5, max_digest=10) == []


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


def test_flood_becomes_a_digest_and_the_rate_is_respected(tmp_path: Path, receiver: FakeReceiver) -> None:
    """3 a minute: two singles, then ten events as one digest, then nothing until a token returns."""
    db = tmp_path / "alerts.db"
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, receiver, clock)

    insert_events(db, [make_event(n) for n in range(2)])
    dispatcher.run_once(clock())
    insert_events(db, [make_event(n) for n in range(2, 12)])
    dispatcher.run_once(clock())
    insert_events(db, [make_event(n) for n in range(12, 14)])
    dispatcher.run_once(clock.advance(5))  # no token yet (one per 20 s)
    assert len(receiver.requests) == 3
    dispatcher.run_once(clock.advance(16))  # one token back

    bodies = [r.json() for r in receiver.requests]
    assert [b.get("type", "event") for b in bodies] == ["event", "event", "digest", "digest"]
    assert bodies[2]["keys"] == [f"a{n}:1" for n in range(2, 12)]
    assert bodies[3]["keys"] == ["a12:1", "a13:1"]
    assert receiver.requests[2].header("webhook-id") == bodies[2]["key"]
    assert sorted(receiver.accepted_keys()) == sorted(f"a{n}:1" for n in range(14))
    assert dispatcher.stats()["hook"]["delivered"] == 14
    dispatcher.stop(1.0)


def test_digest_size_is_capped_and_the_rest_follows(tmp_path: Path, receiver: FakeReceiver) -> None:
    """With max_digest_events 5, twelve events go as digests of 5 and 5; the last two fit the tokens."""
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, receiver, clock, max_digest_events=5)
    insert_events(tmp_path / "alerts.db", [make_event(n) for n in range(12)])

    for _ in range(3):
        dispatcher.run_once(clock.advance(20))

    assert [len(r.event_keys()) for r in receiver.requests] == [5, 5, 1, 1]
    assert len(set(receiver.accepted_keys())) == 12
    dispatcher.stop(1.0)
