"""Per receiver, an alert's transitions arrive in order: across retries, holds, pauses and restarts."""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from tests.alerts.notifiers.channel_receiver import (
    CHANNELS,
    ChannelReceiver,
    every_channel,
    transitions,
)
from tests.alerts.notifiers.fake_receiver import FakeClock, FakeReceiver, insert_events


def _only(
    tmp_path: Path, server: FakeReceiver, clock: FakeClock, names: list[str], seed: int, **notify: Any
) -> NotificationDispatcher:
    receivers = [r for r in every_channel(server.url) if r["name"] in names]
    config = NotifyConfig.model_validate(
        {"receivers": receivers, "external_url": "https://e.example", **notify}
    )
    return NotificationDispatcher(config, tmp_path / "alerts.db", clock=clock, rng=random.Random(seed))


def test_a_hold_survives_a_restart_and_later_transitions_wait_behind_it(
    tmp_path: Path, server: FakeReceiver, channels: ChannelReceiver, clock: FakeClock
) -> None:
    """A firing refused with 503 holds the receiver; restarted at once, the outbox neither sends the
    three transitions that followed before it nor anything before the hold ends."""
    db = tmp_path / "alerts.db"
    channels.fail_requests[CHANNELS["platform"]] = {1}
    retry = {"initial_delay": "PT10M", "max_delay": "PT10M"}
    first = _only(tmp_path, server, clock, ["platform"], seed=3, retry=retry)
    insert_events(db, transitions(alerts=1, rounds=1), created=clock())
    first.run_once(clock())
    (held,) = first.deliveries(state="pending")

    second = _only(tmp_path, server, clock, ["platform"], seed=4, retry=retry)  # kill -9, restart
    insert_events(db, transitions(alerts=1, rounds=3, start=2), created=clock())
    while second.stats()["platform"]["pending"]:
        second.run_once(clock.advance(5))

    arrivals = channels.arrivals[CHANNELS["platform"]]
    assert arrivals[1] >= _epoch(held["next_attempt_at"])  # nothing within the hold, restart or not
    assert channels.keys[CHANNELS["platform"]] == ["a0:1", "a0:2", "a0:3", "a0:4"]
    first.stop(1.0)
    second.stop(1.0)


# The outbox tables as the previous release created them (before messages, holds and windows).
PREVIOUS_RELEASE_DDL = (
    """CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER NOT NULL, receiver TEXT NOT NULL,
        state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ns INTEGER NOT NULL,
        last_error TEXT, delivered_ns INTEGER, event_created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,
        UNIQUE (event_id, receiver))""",
    "CREATE TABLE outbox_watermark (id INTEGER PRIMARY KEY CHECK (id = 0), event_id INTEGER NOT NULL)",
    "INSERT INTO outbox_watermark (id, event_id) VALUES (0, 1)",
    """CREATE TABLE firing_alerts (receiver TEXT NOT NULL, alert_id TEXT NOT NULL, event TEXT NOT NULL,
        PRIMARY KEY (receiver, alert_id))""",
)


def test_a_database_of_the_previous_release_is_upgraded_and_its_hold_kept(
    tmp_path: Path, server: FakeReceiver, channels: ChannelReceiver, clock: FakeClock
) -> None:
    """Tables of the previous release gain their new columns; the hold its last retry set is read back
    from the pending delivery's next attempt, so the upgrade does not let a later event overtake."""
    db = tmp_path / "alerts.db"
    held_until = clock.now + timedelta(minutes=5)
    insert_events(db, transitions(alerts=1, rounds=1), created=clock())
    with sqlite3.connect(db) as conn:
        for ddl in PREVIOUS_RELEASE_DDL:
            conn.execute(ddl)
        conn.execute(
            "INSERT INTO deliveries (event_id, receiver, state, attempts, next_attempt_ns, last_error,"
            " event_created_ns, updated_ns) VALUES (1, 'platform', 'pending', 1, ?, 'unavailable: HTTP 503', 0, 0)",
            (int(held_until.timestamp()) * 10**9,),
        )
    conn.close()
    insert_events(db, transitions(alerts=1, rounds=1, start=2), created=clock())

    dispatcher = _only(tmp_path, server, clock, ["platform"], seed=6)
    assert dispatcher.stats()["platform"]["last_error"] == "unavailable: HTTP 503"
    while dispatcher.stats()["platform"]["pending"] != 0:
        dispatcher.run_once(clock.advance(5))

    assert channels.arrivals[CHANNELS["platform"]][0] >= held_until.timestamp()
    assert channels.keys[CHANNELS["platform"]] == ["a0:1", "a0:2"]
    dispatcher.stop(1.0)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
