"""The delivery loop contains a sink's unexpected exceptions and resumes as soon as a database is back."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from ingest.deadletter import DeadLetterStore
from ingest.delivery import SinkRunner
from ingest.errors import SinkError, SinkReason
from ingest.model import Reading
from ingest.sinks.sqlite import SQLiteSink, SQLiteSinkConfig
from tests.ingest.delivery_support import reading, readings_log
from tests.ingest.test_delivery_loop import FakeClock, ScriptedSink, runner


class OverflowingSink(ScriptedSink):
    """Raises OverflowError (not a SinkError) for any batch holding reading 42, as a buggy sink would."""

    def write(self, readings: Sequence[Reading]) -> None:
        self.calls.append(len(readings))
        if any(r.value == 42.0 for r in readings):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        self.stored.extend(readings)


def test_an_unexpected_sink_exception_costs_only_the_reading_that_raises(tmp_path: Path) -> None:
    """One retry of the batch, then bisection: reading 42 is dead-lettered as internal_error, 99 stored."""
    wal = readings_log(tmp_path / "wal")
    sink = OverflowingSink()
    loop = runner(wal, tmp_path, sink, batch_size=1000)
    assert loop.deliver_once() == 100
    assert sorted(r.value for r in sink.stored) == [float(v) for v in range(100) if v != 42]
    assert sink.calls[:2] == [100, 100]  # the whole batch once more before narrowing it down
    store = DeadLetterStore(tmp_path / "dl.db")
    [letter] = store.list()
    assert (str(letter.reason), letter.parameter) == ("internal_error", "ph")
    assert letter.detail.startswith("internal_error: OverflowError")
    assert wal.consumers()["sink.scripted"] == 10


class ReturningDatabase(ScriptedSink):
    """Unreachable until `back` is set: writes and probes fail with connection_failed, then succeed."""

    def __init__(self) -> None:
        super().__init__()
        self.back = threading.Event()
        self.probes = 0

    def write(self, readings: Sequence[Reading]) -> None:
        if not self.back.is_set():
            self.calls.append(len(readings))
            raise SinkError(SinkReason.CONNECTION_FAILED, "refused", retryable=True)
        super().write(readings)

    def check(self) -> None:
        self.probes += 1
        if self.probes == 2:
            self.back.set()  # the database returns while the runner backs off
        if not self.back.is_set():
            raise SinkError(SinkReason.CONNECTION_FAILED, "refused", retryable=True)


class _MaxRandom(random.Random):
    def uniform(self, a: float, b: float) -> float:  # always the longest backoff
        return b


def test_a_returning_database_ends_the_backoff_at_the_next_probe(tmp_path: Path) -> None:
    """With an hour of backoff ahead, the write resumes at the first probe that the database answers."""
    wal = readings_log(tmp_path / "wal")
    sink = ReturningDatabase()
    config = SQLiteSinkConfig(
        name="scripted",
        retry_initial_delay=timedelta(hours=1),
        retry_max_delay=timedelta(hours=1),
        flush_interval=timedelta(0),
    )
    loop = SinkRunner(
        sink,
        config,
        wal.reader("sink.scripted"),
        DeadLetterStore(tmp_path / "dl.db"),
        monotonic=FakeClock(),
        rng=_MaxRandom(),
    )
    done = threading.Event()
    delivered: list[int] = []
    worker = threading.Thread(target=lambda: (delivered.append(loop.deliver_once()), done.set()), daemon=True)
    worker.start()
    assert done.wait(30.0), "the runner slept out its backoff instead of probing"
    assert delivered == [100]
    assert sink.probes == 2
    assert len(sink.stored) == 100


def test_the_sqlite_sink_refuses_a_time_past_64_bits_as_the_rows_fault(tmp_path: Path) -> None:
    """OverflowError binding a time is a non-retryable `rejected`, which the loop narrows down."""
    sink = SQLiteSink(SQLiteSinkConfig(name="sqlite", path=tmp_path / "r.db"))
    bad = Reading("st", "water_quality", "ph", 7.0, "1", 2**64)
    try:
        with pytest.raises(SinkError) as refused:
            sink.write([reading(1.0), bad])
        assert (refused.value.reason, refused.value.retryable) == ("rejected", False)
        sink.write([reading(1.0)])
        assert sink.count() == 1
    finally:
        sink.close()
