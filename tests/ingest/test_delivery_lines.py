"""The delivery loop's line-protocol path: pre-rendered lines out, refusals narrowed down to readings.

The sink is a scripted `LineProtocolSink` (the real ones are tested against real servers in
tests/integration); the log and the dead-letter store are real.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from ingest.deadletter import DeadLetterStore
from ingest.delivery import SinkRunner
from ingest.errors import SinkError, SinkReason
from ingest.model import Reading
from ingest.records import encode_readings
from ingest.sinks import LineProtocolSink
from ingest.sinks.line_protocol import encode
from ingest.sinks.sqlite import SQLiteSinkConfig
from ingest.wal import WriteAheadLog
from tests.helpers import wait_for
from tests.ingest.delivery_support import reading, readings_log


class LineSink:
    """Takes line protocol; answers each call with the next scripted error and remembers what it stored."""

    name: ClassVar[str] = "lines"

    def __init__(self, script: list[SinkError | None] | None = None, refuse: str | None = None) -> None:
        self.script = list(script or [])
        self.refuse = refuse
        self.bodies: list[bytes] = []
        self.counts: list[int] = []  # lines (points) per request
        self.readings: list[Reading] = []

    def write_lines(self, body: bytes) -> None:
        self.counts.append(body.count(b"\n"))
        self._answer(body)
        self.bodies.append(body)

    def write(self, readings: Sequence[Reading]) -> None:
        self._answer(encode(readings).encode())
        self.readings.extend(readings)

    def _answer(self, body: bytes) -> None:
        if self.script:
            error = self.script.pop(0)
            if error is not None:
                raise error
        if self.refuse is not None and self.refuse.encode() in body:
            raise SinkError(SinkReason.REJECTED, "HTTP 400: bad point", retryable=False)

    def check(self) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.fixture
def wal(tmp_path: Path) -> WriteAheadLog:
    return readings_log(tmp_path / "wal")


def runner(wal: WriteAheadLog, tmp_path: Path, sink: LineSink, **options: object) -> SinkRunner:
    settings = SQLiteSinkConfig(
        name="lines",
        retry_initial_delay=timedelta(0),
        retry_max_delay=timedelta(0),
        flush_interval=timedelta(0),
        batch_size=1000,
    )
    return SinkRunner(
        sink,
        settings,
        wal.reader("sink.lines"),
        DeadLetterStore(tmp_path / "dl.db"),
        rng=random.Random(1),
        **options,  # type: ignore[arg-type]
    )


def test_the_scripted_sink_is_a_line_protocol_sink() -> None:
    """The runner recognises a sink with `write_lines` as one that takes pre-rendered lines."""
    assert isinstance(LineSink(), LineProtocolSink)


def test_a_line_sink_gets_the_records_lines_joined_and_the_reading_count(
    wal: WriteAheadLog, tmp_path: Path
) -> None:
    """One request holds every record's lines in log order, equal to encoding the readings; the offset moves."""
    sink = LineSink()
    assert runner(wal, tmp_path, sink).deliver_once() == 100
    assert sink.counts == [100]
    assert sink.bodies == [encode([reading(float(v)) for v in range(100)]).encode()]
    assert sink.readings == []
    assert wal.consumers()["sink.lines"] == 10


def test_a_partial_batch_is_written_once_the_log_goes_quiet(wal: WriteAheadLog, tmp_path: Path) -> None:
    """With an hour's flush interval and room for more, the readings in the log go out once none follow."""
    settings = SQLiteSinkConfig(
        name="lines",
        flush_interval=timedelta(hours=1),
        flush_idle=timedelta(milliseconds=20),
        batch_size=100_000,
    )
    sink = LineSink()
    loop = SinkRunner(sink, settings, wal.reader("sink.lines"), DeadLetterStore(tmp_path / "dl.db"))
    assert loop.deliver_once(wait=1.0) == 100
    assert sink.counts == [100]


def test_413_halves_the_records(wal: WriteAheadLog, tmp_path: Path) -> None:
    """A too-large answer writes the batch again as two halves of whole records."""
    sink = LineSink([SinkError(SinkReason.TOO_LARGE, "HTTP 413", retryable=True, split=True)])
    assert runner(wal, tmp_path, sink).deliver_once() == 100
    assert sink.counts == [100, 50, 50]
    assert b"".join(sink.bodies) == encode([reading(float(v)) for v in range(100)]).encode()


def test_a_refusal_is_narrowed_down_to_the_refused_reading(wal: WriteAheadLog, tmp_path: Path) -> None:
    """A 400 on the lines decodes the batch and bisects it: one dead letter, the other 99 written."""
    sink = LineSink(refuse="ph=42.0,")
    assert runner(wal, tmp_path, sink).deliver_once() == 100
    assert sorted(r.value for r in sink.readings) == [float(v) for v in range(100) if v != 42]
    letters = DeadLetterStore(tmp_path / "dl.db").list()
    assert [(d.reason, d.station_id) for d in letters] == [("sink_rejected", "st")]
    assert b'"value":42.0' in letters[0].payload


def test_records_without_lines_are_written_as_readings(tmp_path: Path) -> None:
    """A record the processor could not render goes through `write`, whose encoding error dead-letters it."""
    log = WriteAheadLog(tmp_path / "wal", segment_bytes=2**16, quota_bytes=2**20)
    log.append(encode_readings([reading(1.0)]))
    log.append(encode_readings([reading(2.0, (("river", "a\nb"), ("station_id", "st")))]))
    log.sync()
    sink = LineSink()
    original = sink.write

    def write(readings: Sequence[Reading]) -> None:
        try:
            original(readings)
        except ValueError as exc:
            raise SinkError(SinkReason.REJECTED, f"cannot encode: {exc}", retryable=False) from None

    sink.write = write  # type: ignore[method-assign]
    assert runner(log, tmp_path, sink).deliver_once() == 2
    assert sink.bodies == []
    assert [r.value for r in sink.readings] == [1.0]
    assert [d.reason for d in DeadLetterStore(tmp_path / "dl.db").list()] == ["sink_rejected"]


class SkewedClock:
    """Real monotonic time plus whatever the sink's writes claim to have taken."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skew


class SlowLineSink(LineSink):
    """A sink whose every write takes `seconds` on the runner's clock."""

    def __init__(self, clock: SkewedClock, seconds: float) -> None:
        super().__init__()
        self.clock = clock
        self.seconds = seconds

    def write_lines(self, body: bytes) -> None:
        self.clock.skew += self.seconds
        super().write_lines(body)


def yielding_runner(
    wal: WriteAheadLog, tmp_path: Path, sink: LineSink, clock: SkewedClock, **options: object
) -> SinkRunner:
    settings = SQLiteSinkConfig(name="lines", flush_interval=timedelta(0), batch_size=10)
    return SinkRunner(
        sink,
        settings,
        wal.reader("sink.lines"),
        DeadLetterStore(tmp_path / "dl.db"),
        monotonic=clock,
        **options,  # type: ignore[arg-type]
    )


def test_a_runner_told_to_yield_pauses_after_each_batch_while_ingest_is_busy(
    wal: WriteAheadLog, tmp_path: Path
) -> None:
    """While `yield_to` says busy, a batch that took 1 s is followed by a pause; idle again, the rest goes."""
    busy = threading.Event()
    busy.set()
    asked = threading.Event()

    def ingest_busy() -> bool:
        asked.set()
        return busy.is_set()

    clock = SkewedClock()
    sink = SlowLineSink(clock, seconds=1.0)
    loop = yielding_runner(wal, tmp_path, sink, clock, yield_to=ingest_busy, yield_max_s=3600.0)
    loop.start()
    try:
        assert asked.wait(5)
        assert sink.counts == [10]
        busy.clear()
        wait_for(lambda: sum(sink.counts) == 100, "the backlog written once idle", timeout=5)
    finally:
        loop.stop(timeout=2)


def test_a_yielding_runner_pauses_no_longer_than_its_cap(wal: WriteAheadLog, tmp_path: Path) -> None:
    """Batches that took 1000 s each are followed by pauses of at most yield_max_s: the backlog still goes."""
    clock = SkewedClock()
    sink = SlowLineSink(clock, seconds=1000.0)
    loop = yielding_runner(wal, tmp_path, sink, clock, yield_to=lambda: True, yield_max_s=0.05)
    loop.start()
    try:
        wait_for(lambda: sum(sink.counts) == 100, "the backlog written while busy", timeout=10)
    finally:
        loop.stop(timeout=2)
