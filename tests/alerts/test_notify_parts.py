"""A digest split into parts: delivered only when every part was accepted, and no accepted part resent."""

from __future__ import annotations

import random
from pathlib import Path

from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from tests.alerts.notifiers.channel_receiver import (
    CHANNELS,
    ChannelReceiver,
    every_channel,
    transitions,
)
from tests.alerts.notifiers.fake_receiver import FakeClock, FakeReceiver, insert_events

WECOM = CHANNELS["basin"]
EVENTS = transitions(alerts=120, rounds=1)


def _wecom(tmp_path: Path, server: FakeReceiver, clock: FakeClock, seed: int = 1) -> NotificationDispatcher:
    """Only the WeCom robot, digesting up to 120 events (several parts of 4096 bytes)."""
    (wecom,) = [r for r in every_channel(server.url) if r["type"] == "wecom"]
    config = NotifyConfig.model_validate(
        {"receivers": [wecom], "max_digest_events": 120, "external_url": "https://ecowatch.example"}
    )
    return NotificationDispatcher(config, tmp_path / "alerts.db", clock=clock, rng=random.Random(seed))


def _part_keys(server: FakeReceiver) -> list[str]:
    return [(r.header("Idempotency-Key") or "").split("#")[-1] for r in server.requests]


def _pending(dispatcher: NotificationDispatcher) -> int:
    return int(dispatcher.stats()["basin"]["pending"])


def test_a_failed_part_is_retried_alone_and_the_digest_delivered_after_the_last(
    tmp_path: Path, server: FakeReceiver, channels: ChannelReceiver, clock: FakeClock
) -> None:
    """Part 2 of a digest answered 503: part 2 is retried (same key), then the rest; part 1 never again."""
    dispatcher = _wecom(tmp_path, server, clock)
    insert_events(tmp_path / "alerts.db", EVENTS, created=clock())
    channels.fail_requests[WECOM] = {2}

    _force_digest(dispatcher, clock)
    assert _pending(dispatcher) == 120  # part 1 accepted is not the digest delivered
    digest_parts = _part_keys(server)
    parts = int(digest_parts[0].split("/")[1])
    assert parts >= 3
    assert digest_parts == ["1/" + str(parts), "2/" + str(parts)]
    for _ in range(60):
        dispatcher.run_once(clock.advance(10))

    assert _part_keys(server) == [f"{n}/{parts}" for n in (1, 2, *range(2, parts + 1))]
    assert channels.keys[WECOM] == [e.key for e in EVENTS]  # each once, in order
    assert channels.violations == []
    assert dispatcher.stats()["basin"]["delivered"] == 120
    dispatcher.stop(1.0)


def test_a_restart_between_parts_resumes_at_the_first_part_not_accepted(
    tmp_path: Path, server: FakeReceiver, channels: ChannelReceiver, clock: FakeClock
) -> None:
    """Killed after part 1 was accepted and part 2 refused, a new outbox sends part 2 onwards only."""
    channels.fail_requests[WECOM] = {2}
    first = _wecom(tmp_path, server, clock, seed=1)
    insert_events(tmp_path / "alerts.db", EVENTS, created=clock())
    _force_digest(first, clock)
    assert len(server.requests) == 2

    second = _wecom(tmp_path, server, clock, seed=2)  # kill -9 and restart
    for _ in range(60):
        second.run_once(clock.advance(10))

    parts = int(_part_keys(server)[0].split("/")[1])
    assert _part_keys(server) == [f"{n}/{parts}" for n in (1, 2, *range(2, parts + 1))]  # 2 refused once
    assert channels.keys[WECOM] == [e.key for e in EVENTS]
    assert second.stats()["basin"]["delivered"] == 120
    second.stop(1.0)


def test_a_part_whose_answer_was_lost_is_the_only_repeat(
    tmp_path: Path, server: FakeReceiver, channels: ChannelReceiver, clock: FakeClock
) -> None:
    """The receiver took part 1 but its answer never came: part 1 is sent again, with the same key, and
    only its events arrive twice."""
    channels.lose_answer = {WECOM}
    dispatcher = _wecom(tmp_path, server, clock)
    insert_events(tmp_path / "alerts.db", EVENTS, created=clock())
    _force_digest(dispatcher, clock)
    for _ in range(60):
        dispatcher.run_once(clock.advance(10))

    keys = [r.header("Idempotency-Key") for r in server.requests]
    assert keys[0] == keys[1]
    repeated = channels.duplicates(WECOM)
    assert set(repeated.values()) == {2}
    assert list(repeated) == [e.key for e in EVENTS][: len(repeated)]
    assert sorted(set(channels.keys[WECOM])) == sorted(e.key for e in EVENTS)
    assert channels.out_of_order(WECOM) == []
    dispatcher.stop(1.0)


def _force_digest(dispatcher: NotificationDispatcher, clock: FakeClock) -> None:
    """One round with the window too small for 120 singles: a digest of all 120, split into parts."""
    dispatcher.run_once(clock())
