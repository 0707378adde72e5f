"""The delivery loop: batching, retry verdicts, splitting, dead-lettering and offsets.

The sink here is a scripted implementation of the `Sink` protocol (the real sinks are tested
against real servers in tests/integration); the log and the dead-letter store are real.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from ingest.deadletter import DeadLetterStore
from ingest.delivery import SinkRunner
from ingest.errors import SinkError, SinkReason
from ingest.model import Reading
from ingest.sinks.sqlite import SQLiteSinkConfig
from ingest.wal import WriteAheadLog
from tests.ingest.delivery_support import readings_log


class ScriptedSink:
    """Answers each write with the next scripted error (None = success) and records what it stored."""

    name: ClassVar[str] = "scripted"

    def __init__(
        self, script: list[SinkError | None] | None = None, refuse: set[float] | None = None
    ) -> None:
        self.script = list(script or [])
        self.refuse = refuse or set()
        self.calls: list[int] = []
        self.stored: list[Reading] = []

    def write(self, readings: Sequence[Reading]) -> None:
        self.calls.append(len(readings))
        if self.script:
            error = self.script.pop(0)
            if error is not None:
                raise error
        if any(r.value in self.refuse for r in readings):
            raise SinkError(SinkReason.REJECTED, "HTTP 400: bad point", retryable=False)
        self.stored.extend(readings)

    def check(self) -> None:
        return None

    def close(self) -> None:
        return None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wal(tmp_path: Path) -> WriteAheadLog:
    return readings_log(tmp_path / "wal")


def runner(wal: WriteAheadLog, tmp_path: Path, sink: ScriptedSink, **config: object) -> SinkRunner:
    settings = SQLiteSinkConfig(  # type: ignore[arg-type]
        name="scripted",
        retry_initial_delay=timedelta(0),
        retry_max_delay=timedelta(0),
        flush_interval=timedelta(0),
        **config,
    )
    return SinkRunner(
        sink,
        settings,
        wal.reader("sink.scripted"),
        DeadLetterStore(tmp_path / "dl.db"),
        monotonic=FakeClock(),
        rng=random.Random(1),
    )


def test_batches_respect_the_size_limit_and_commit_the_offset(wal: WriteAheadLog, tmp_path: Path) -> None:
    """Readings go out in batches of at most batch_size; the offset moves only past written records."""
    sink = ScriptedSink()
    loop = runner(wal, tmp_path, sink, batch_size=25)
    delivered = 0
    while moved := loop.deliver_once():
        delivered += moved
    assert delivered == 100
    assert max(sink.calls) <= 25 + 9  # whole records: a batch may end inside the last record read
    assert [r.value for r in sink.stored] == [float(v) for v in range(100)]
    assert wal.consumers()["sink.scripted"] == 10


def test_retryable_failures_are_retried_until_success(wal: WriteAheadLog, tmp_path: Path) -> None:
    """429/5xx verdicts retry the same batch; nothing is skipped or dead-lettered."""
    failures: list[SinkError | None] = [SinkError(SinkReason.UNAVAILABLE, "HTTP 503", retryable=True)] * 3
    sink = ScriptedSink(failures)
    loop = runner(wal, tmp_path, sink, batch_size=1000)
    assert loop.deliver_once() == 100
    assert sink.calls == [100, 100, 100, 100]
    assert len(sink.stored) == 100


def test_413_splits_the_batch(wal: WriteAheadLog, tmp_path: Path) -> None:
    """A too-large answer halves the batch and writes both halves."""
    sink = ScriptedSink([SinkError(SinkReason.TOO_LARGE, "HTTP 413", retryable=True, split=True)])
    loop = runner(wal, tmp_path, sink, batch_size=1000)
    assert loop.deliver_once() == 100
    assert sink.calls == [100, 50, 50]
    assert len(sink.stored) == 100


def test_refused_points_are_isolated_and_dead_lettered(wal: WriteAheadLog, tmp_path: Path) -> None:
    """A 400 is narrowed down to the refused readings; the others are written."""
    sink = ScriptedSink(refuse={13.0, 77.0})
    loop = runner(wal, tmp_path, sink, batch_size=1000)
    assert loop.deliver_once() == 100
    assert sorted(r.value for r in sink.stored) == [float(v) for v in range(100) if v not in (13, 77)]
    letters = DeadLetterStore(tmp_path / "dl.db").list()
    assert [(d.reason, d.station_id, d.parameter) for d in letters] == [("sink_rejected", "st", "ph")] * 2
    assert b'"value":13.0' in letters[0].payload


def test_failing_past_the_budget_marks_the_sink_down_and_recovery_clears_it(
    wal: WriteAheadLog, tmp_path: Path
) -> None:
    """The sink is reported down after its retry budget and up again after a success."""
    clock = FakeClock()
    sink = ScriptedSink()

    class Advancing(ScriptedSink):
        def write(self, readings: Sequence[Reading]) -> None:
            clock.now += 10
            if clock.now < 100:
                raise SinkError(SinkReason.CONNECTION_FAILED, "refused", retryable=True)
            super().write(readings)

    flaky = Advancing()
    settings = SQLiteSinkConfig(
        name="scripted",
        retry_initial_delay=timedelta(0),
        retry_max_delay=timedelta(0),
        retry_budget=timedelta(seconds=30),
        flush_interval=timedelta(0),
    )
    loop = SinkRunner(
        flaky,
        settings,
        wal.reader("sink.scripted"),
        DeadLetterStore(tmp_path / "dl.db"),
        monotonic=clock,
        rng=random.Random(1),
    )
    seen_down: list[bool] = []
    original = loop._back_off

    def spy(attempt: int, exc: SinkError) -> bool:
        result = original(attempt, exc)
        seen_down.append(loop.down)
        return result

    loop._back_off = spy  # type: ignore[method-assign]
    assert loop.deliver_once() == 100
    assert True in seen_down
    assert not loop.down
    assert len(flaky.stored) == 100
    assert sink.stored == []


def test_stopping_mid_outage_leaves_the_offset_for_the_next_start(wal: WriteAheadLog, tmp_path: Path) -> None:
    """A stop during retries commits nothing; a new runner replays the same readings."""
    sink = ScriptedSink([SinkError(SinkReason.UNAVAILABLE, "HTTP 503", retryable=True)] * 1000)
    loop = runner(wal, tmp_path, sink, batch_size=1000)
    loop._stop.set()
    assert loop.deliver_once() == 0
    assert wal.consumers()["sink.scripted"] == 0
