"""Robots: one window and one pause per robot, shared by its receivers and kept by a killed process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from tests.alerts.notifiers.channel_receiver import (
    CHANNELS,
    DINGTALK_SECRET,
    WEBHOOK_KEY,
    ChannelReceiver,
    every_channel,
    transitions,
)
from tests.alerts.notifiers.fake_receiver import FakeClock, FakeReceiver, insert_events
from tests.helpers import wait_for

DUTY = CHANNELS["duty"]
ROOT = Path(__file__).resolve().parents[2]


class WallClock(FakeClock):
    """The wall clock, for a receiver facing an outbox in another process."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def clock() -> FakeClock:
    """The one clock of the dispatcher and the receiver."""
    return FakeClock()


def _serve(channels: ChannelReceiver) -> FakeReceiver:
    http = FakeReceiver()
    http.responder = channels
    return http.start()


def _duty(url: str, name: str = "duty", **extra: Any) -> dict[str, Any]:
    (duty,) = [r for r in every_channel(url) if r["name"] == "duty"]
    return {**duty, "name": name, **extra}


def test_two_receivers_of_one_robot_share_its_window_and_its_pause(tmp_path: Path, clock: FakeClock) -> None:
    """Two receivers on the same token never pass the robot's 20 a minute together, and a 130101 answer
    to one keeps both away for the penalty; start-up says they share the robot."""
    channels = ChannelReceiver(clock, webhook_key=WEBHOOK_KEY, dingtalk_secret=DINGTALK_SECRET)
    server = _serve(channels)
    config = NotifyConfig.model_validate(
        {
            "receivers": [_duty(server.url, "duty-a"), _duty(server.url, "duty-b")],
            "external_url": "https://e.example",
        }
    )
    with capture_logs() as logs:
        dispatcher = NotificationDispatcher(config, tmp_path / "alerts.db", clock=clock)
    events = transitions(alerts=20, rounds=2)
    db = tmp_path / "alerts.db"
    channels.penalize(DUTY)
    insert_events(db, events[:2], created=clock())
    dispatcher.run_once(clock())
    for second in range(2, 40):
        insert_events(db, events[second : second + 1], created=clock())
        dispatcher.run_once(clock.advance(1))
    while any(s["pending"] for s in dispatcher.stats().values()):
        dispatcher.run_once(clock.advance(5))

    assert [(e["receivers"], e["log_level"]) for e in logs if "robot" in e.get("problem", "")] == [
        ("duty-a, duty-b", "warning")
    ]
    assert channels.violations == []  # nothing within the penalty, never past 20 a minute
    arrivals = channels.arrivals[DUTY]
    assert arrivals[1] - arrivals[0] >= 600  # the pause held the other receiver too
    assert Counter(channels.keys[DUTY]) == dict.fromkeys((e.key for e in events), 2)  # once per receiver
    dispatcher.stop(1.0)
    server.stop()


def test_a_killed_outbox_process_leaves_the_pause_to_the_next(tmp_path: Path) -> None:
    """kill -9 of an outbox paused by 130101, then a new process: no request before the pause ends, and
    the transitions that came meanwhile arrive after the earlier ones, each once."""
    channels = ChannelReceiver(
        WallClock(), webhook_key=WEBHOOK_KEY, dingtalk_secret=DINGTALK_SECRET, dingtalk_penalty=3.0
    )
    server = _serve(channels)
    db = tmp_path / "alerts.db"
    config = tmp_path / "notify.json"
    config.write_text(
        json.dumps(
            {
                "receivers": [_duty(server.url, throttle_pause="PT3S")],
                "poll_interval": "PT0.1S",
                "external_url": "https://e.example",
            }
        ),
        encoding="utf-8",
    )
    channels.penalize(DUTY)
    before, after = transitions(alerts=3, rounds=1), transitions(alerts=3, rounds=3, start=2)
    insert_events(db, before, created=datetime.now(UTC))
    first = _outbox(config, db)
    try:
        wait_for(lambda: _paused(db), "the first outbox to record the robot's pause", timeout=20)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    insert_events(db, after, created=datetime.now(UTC))
    second = _outbox(config, db)
    try:
        wait_for(lambda: len(channels.keys[DUTY]) == 12, "every transition at the robot", timeout=30)
    finally:
        second.kill()
        second.wait()
        server.stop()

    assert channels.violations == []
    arrivals = channels.arrivals[DUTY]
    assert arrivals[1] - arrivals[0] >= 3.0
    assert Counter(channels.keys[DUTY]) == dict.fromkeys((e.key for e in before + after), 1)
    assert channels.out_of_order(DUTY) == []


def _outbox(config: Path, db: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.alerts.notifiers.outbox_process", str(config), str(db)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "started"
    return process


def _paused(db: Path) -> bool:
    with sqlite3.connect(db) as conn:
        try:
            (paused,) = conn.execute("SELECT COUNT(*) FROM rate_pauses").fetchone()
            return int(paused) > 0
        except sqlite3.OperationalError:
            return False
    return False
