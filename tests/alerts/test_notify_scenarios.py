"""Every channel at a receiver that enforces the services' limits: floods, outages, penalties, restarts.

Each scenario ends with every event at every channel exactly once (or once more where the
receiver processed a request whose answer was lost), each alert's transitions in order, and
no request the services would count against us: none past a size or rate limit, none within a
penalty or before a Retry-After counted from the answer.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from alerts.events import AlertEvent
from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from tests.alerts.notifiers.channel_receiver import (
    CHANNELS,
    KEY_MARK,
    ChannelReceiver,
    every_channel,
    transitions,
)
from tests.alerts.notifiers.fake_receiver import FakeClock, FakeReceiver, insert_events

FLOOD = transitions(alerts=50, rounds=4)  # 200 transitions: firing, resolved, firing, resolved


def _dispatcher(
    tmp_path: Path, server: FakeReceiver, clock: FakeClock, seed: int = 1, **notify: Any
) -> NotificationDispatcher:
    config = NotifyConfig.model_validate(
        {"receivers": every_channel(server.url), "external_url": "https://ecowatch.example", **notify}
    )
    return NotificationDispatcher(config, tmp_path / "alerts.db", clock=clock, rng=random.Random(seed))


def _feed(
    dispatcher: NotificationDispatcher, db: Path, clock: FakeClock, events: list[AlertEvent], seconds: float
) -> None:
    """Write `events` as the engine would, evenly over `seconds`, running the outbox each second."""
    per_second = len(events) / seconds
    written = 0
    for second in range(1, int(seconds) + 1):
        upto = round(second * per_second)
        insert_events(db, events[written:upto], created=clock())
        written = upto
        dispatcher.run_once(clock.advance(1))


def _drain(
    dispatcher: NotificationDispatcher, clock: FakeClock, step: float = 5, limit: float = 7200
) -> None:
    """Run the outbox until nothing is pending (or `limit` fake seconds passed)."""
    waited = 0.0
    while any(s["pending"] for s in dispatcher.stats().values()) and waited < limit:
        dispatcher.run_once(clock.advance(step))
        waited += step


def _busiest_minute(arrivals: list[float]) -> int:
    return max(sum(1 for t in arrivals if start <= t < start + 60) for start in arrivals)


def _assert_every_event_once_in_order(
    channels: ChannelReceiver,
    events: list[AlertEvent],
    allowed_repeats: dict[str, dict[str, int]] | None = None,
) -> None:
    keys = [e.key for e in events]
    for name, channel in CHANNELS.items():
        got = channels.keys[channel]
        assert sorted(set(got)) == sorted(keys), f"{name}: missing {sorted(set(keys) - set(got))[:5]}"
        assert channels.duplicates(channel) == (allowed_repeats or {}).get(name, {}), name
        assert channels.out_of_order(channel) == [], name
    assert channels.violations == []


def test_a_flood_of_200_transitions_in_a_minute_reaches_every_channel_whole(
    tmp_path: Path, server: FakeReceiver, channels: ChannelReceiver, clock: FakeClock
) -> None:
    """200 transitions in one minute: every channel gets each once, in order, within its sizes and rates."""
    dispatcher = _dispatcher(tmp_path, server, clock)

    _feed(dispatcher, tmp_path / "alerts.db", clock, FLOOD, seconds=60)
    _drain(dispatcher, clock)

    _assert_every_event_once_in_order(channels, FLOOD)
    assert {name: s["delivered"] for name, s in dispatcher.stats().items()} == dict.fromkeys(CHANNELS, 200)
    robots = [r for r in server.requests if "/robot/send" in r.path or "/cgi-bin/" in r.path]
    assert any("#" in (r.header("Idempotency-Key") or "") for r in robots)  # a digest was split, not cut
    for name in ("duty", "basin"):  # the window was used to its margin, never past it
        assert _busiest_minute(channels.arrivals[CHANNELS[name]]) == 18
    dispatcher.stop(1.0)


def test_an_outage_of_every_channel_loses_nothing_and_keeps_order(
    tmp_path: Path, server: FakeReceiver, channels: ChannelReceiver, clock: FakeClock
) -> None:
    """Refused connections, then 503s, a 429 and a lost answer mid-flood: all arrive, in order, none early."""
    db = tmp_path / "alerts.db"
    dispatcher = _dispatcher(tmp_path, server, clock)
    _feed(dispatcher, db, clock, FLOOD[:60], seconds=15)
    port = server.port
    server.stop()  # connection refused, for two minutes of the flood
    _feed(dispatcher, db, clock, FLOOD[60:120], seconds=120)
    server = FakeReceiver(port=port)
    server.responder = channels
    server.start()
    channels.down = {CHANNELS["am"], CHANNELS["duty"]}  # back, but answering 503 for a while
    channels.throttle(CHANNELS["ops"], 90)
    channels.throttle(CHANNELS["platform"], 45)
    channels.lose_answer = {CHANNELS["basin"]}
    _feed(dispatcher, db, clock, FLOOD[120:], seconds=25)
    channels.down = set()
    _drain(dispatcher, clock)

    (lost,) = [r for r in server.requests if r.answer.drop]  # processed, then its answer lost
    repeated = KEY_MARK.findall(lost.json()["markdown"]["content"])
    assert repeated
    _assert_every_event_once_in_order(channels, FLOOD, {"basin": dict.fromkeys(repeated, 2)})
    stats = dispatcher.stats()
    assert {name: (s["delivered"], s["pending"], s["failed"]) for name, s in stats.items()} == dict.fromkeys(
        CHANNELS, (200, 0, 0)
    )
    dispatcher.stop(1.0)
    server.stop()


def test_a_penalty_then_kill_and_restart_sends_nothing_before_the_penalty_ends(
    tmp_path: Path, server: FakeReceiver, channels: ChannelReceiver, clock: FakeClock
) -> None:
    """130101 and 45009, the outbox killed 95 s later and restarted: no robot hears from it before its
    penalty is over, and the transitions that came meanwhile arrive after the earlier ones, once each."""
    db = tmp_path / "alerts.db"
    first = _dispatcher(tmp_path, server, clock, seed=1)
    before = transitions(alerts=5, rounds=1)  # firing
    after = transitions(alerts=5, rounds=3, start=2)  # resolved, firing, resolved
    channels.penalize(CHANNELS["duty"])
    channels.penalize(CHANNELS["basin"])
    insert_events(db, before, created=clock())
    first.run_once(clock())
    penalized_at = clock()
    assert all(channels.arrivals[CHANNELS[name]] for name in ("duty", "basin"))
    assert channels.keys[CHANNELS["duty"]] == []  # refused: the robot is throttled now

    _feed(first, db, clock, after[:5], seconds=30)
    clock.advance(65)  # kill -9 here: nothing of the first outbox runs again
    with capture_logs():
        second = _dispatcher(tmp_path, server, clock, seed=2)
    _feed(second, db, clock, after[5:], seconds=60)
    dingtalk_requests = len(channels.arrivals[CHANNELS["duty"]])
    assert dingtalk_requests == 1  # still within the 600 s since the 130101 answer
    _drain(second, clock)

    _assert_every_event_once_in_order(channels, before + after)
    resumed = channels.arrivals[CHANNELS["duty"]][1]
    assert resumed - penalized_at.timestamp() >= 600
    second.stop(1.0)


def test_retry_after_counts_from_the_answer_of_a_slow_receiver(
    tmp_path: Path, server: FakeReceiver, channels: ChannelReceiver, clock: FakeClock
) -> None:
    """A 429 with Retry-After 60 answered 20 s after the request: the retry comes 60 s after the answer."""
    channels.latency = 20.0
    channels.throttle(CHANNELS["platform"], 60)
    dispatcher = _dispatcher(tmp_path, server, clock)
    insert_events(tmp_path / "alerts.db", transitions(alerts=1, rounds=1), created=clock())

    dispatcher.run_once(clock())
    sent_at = channels.arrivals[CHANNELS["platform"]][0]
    for _ in range(30):
        dispatcher.run_once(clock.advance(5))

    assert channels.violations == []
    retried_at = channels.arrivals[CHANNELS["platform"]][1]
    assert retried_at >= sent_at + 20 + 60
    assert channels.keys[CHANNELS["platform"]] == ["a0:1"]
    dispatcher.stop(1.0)


def test_backoff_counts_from_the_answer(
    tmp_path: Path, server: FakeReceiver, channels: ChannelReceiver, clock: FakeClock
) -> None:
    """A 503 answered 30 s late holds the receiver from the answer: the next attempt is never before it."""
    channels.latency = 30.0
    channels.fail_requests[CHANNELS["platform"]] = {1}
    dispatcher = _dispatcher(tmp_path, server, clock, retry={"initial_delay": "PT1S", "max_delay": "PT1S"})
    insert_events(tmp_path / "alerts.db", transitions(alerts=1, rounds=1), created=clock())

    dispatcher.run_once(clock())
    (row,) = dispatcher.deliveries(receiver="platform")
    answered = datetime.fromtimestamp(channels.arrivals[CHANNELS["platform"]][0] + 30, tz=clock().tzinfo)

    assert answered <= datetime.fromisoformat(row["next_attempt_at"]) <= answered + timedelta(seconds=1)
    dispatcher.stop(1.0)
