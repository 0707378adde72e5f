"""When the daemon tells the alert engine to yield: during a burst, never while the logs fill up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.app.daemon import INGEST_BUSY_BACKLOG, Daemon
from ingest.app.settings import load_settings
from ingest.records import encode_message


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    settings = load_settings(None, data_dir=tmp_path / "data", http={"port": 0})
    daemon = Daemon(settings)  # not started: no broker, no threads
    yield daemon
    daemon.raw_wal.close()
    daemon.readings_wal.close()
    daemon.deadletters.close()
    daemon.alerts.close()


def log_raw_messages(daemon: Daemon, count: int) -> None:
    for _ in range(count):
        daemon.raw_wal.append(encode_message(b"ecowatch/v1/a/b/water", b"{}", 0))
    daemon.raw_wal.sync()


def test_idle_when_nothing_waits(daemon: Daemon) -> None:
    """With both logs caught up, ingest is not busy and the engine runs freely."""
    assert not daemon.ingest_busy()


def test_busy_while_the_processor_is_behind_the_raw_log(daemon: Daemon) -> None:
    """More unprocessed raw messages than the backlog mark means a burst is being taken in."""
    log_raw_messages(daemon, INGEST_BUSY_BACKLOG)
    assert not daemon.ingest_busy()
    log_raw_messages(daemon, 1)
    assert daemon.ingest_busy()


def test_not_busy_while_the_readings_log_is_full(daemon: Daemon) -> None:
    """A processor blocked on a full readings log must not make the engine (maybe what pins it) yield."""
    log_raw_messages(daemon, INGEST_BUSY_BACKLOG + 1)
    daemon.processor.blocked_on_full_log = True
    assert not daemon.ingest_busy()
