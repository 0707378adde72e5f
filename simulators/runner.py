"""Drive a publisher from a message stream: real time, accelerated, or backfill as fast as possible.

- Real time (`speed=1`) and accelerated (`speed=1440`: a simulated day per minute) pace each
  message to its simulated time: wall = wall_start + (sim_time - sim_start) / speed. An
  accelerated run that starts now would send timestamps from the future, which the daemon rejects
  as clock skew: start it in the past (`ecowatch simulate` starts it `duration` ago).
- Backfill sends a past period as fast as the publisher takes it.

Every run ends by waiting for the publisher's acks and returns a `RunSummary`; on a terminal a tqdm
progress bar counts messages on stderr.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tqdm import tqdm

from simulators.publish import Publisher

# How long the end of a run waits for outstanding acks before counting them as failed.
FLUSH_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did: messages handed over, delivered and lost, and the wall time it took."""

    generated: int
    sent: int
    failed: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Delivered messages per wall-clock second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"sent {self.sent}, failed {self.failed} of {self.generated} "
            f"in {self.elapsed_s:.1f} s ({self.rate:.0f} msg/s)"
        )


class Bar(Protocol):
    """The part of a tqdm progress bar the runners use."""

    def update(self, n: int = 1) -> object: ...
    def __enter__(self) -> Bar: ...
    def __exit__(self, *exc: object) -> object: ...


class TimedMessage(Protocol):
    """A message with the simulated time it belongs to (`simulators.simulator.SimMessage`)."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def sim_time(self) -> datetime: ...


class MessageSource(Protocol):
    """What the runners need of a simulator: its messages over a time span, and how many."""

    def report_count(self, start: datetime, end: datetime) -> int: ...
    def iter_messages(self, start: datetime, end: datetime | None = None) -> Iterator[TimedMessage]: ...


def progress_bar(total: int | None, *, enabled: bool | None = None) -> Bar:
    """A message counter on stderr, shown only on a terminal unless `enabled` says otherwise."""
    show = sys.stderr.isatty() if enabled is None else enabled
    bar: Bar = tqdm(total=total, unit="msg", disable=not show, file=sys.stderr, dynamic_ncols=True)
    return bar


def run_backfill(
    simulator: MessageSource,
    publisher: Publisher,
    start: datetime,
    end: datetime,
    *,
    stop: threading.Event | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Every message of [start, end), as fast as the publisher takes them, unless `stop` is set."""
    total = simulator.report_count(start, end)  # reports, not messages: a close estimate for the bar
    messages = ((m.topic, m.payload) for m in simulator.iter_messages(start, end))
    return drain(messages, publisher, total=total, stop=stop, progress=progress)


def drain(
    messages: Iterable[tuple[str, bytes]],
    publisher: Publisher,
    *,
    total: int | None = None,
    stop: threading.Event | None = None,
    progress: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunSummary:
    """Publish every message of a stream without pacing, unless `stop` is set, then wait for the acks."""
    began, sent_before = clock(), publisher.sent
    generated = 0
    with progress_bar(total, enabled=progress) as bar:
        for message in messages:
            if stop is not None and stop.is_set():
                break
            publisher.publish(message[0], message[1])
            generated += 1
            bar.update()
    return finish(publisher, generated, began, sent_before, clock)


def run_realtime(
    simulator: MessageSource,
    publisher: Publisher,
    stop: threading.Event,
    *,
    speed: float = 1.0,
    start: datetime | None = None,
    duration: timedelta | None = None,
    progress: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunSummary:
    """Messages paced to their simulated time at `speed`, until `duration` of simulated time or `stop`."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    sim_start = start or datetime.now(UTC)
    end = sim_start + duration if duration is not None else None
    wall_start, sent_before = clock(), publisher.sent
    total = simulator.report_count(sim_start, end) if end is not None else None
    generated = 0
    with progress_bar(total, enabled=progress) as bar:
        for message in simulator.iter_messages(sim_start, end):
            due = wall_start + (message.sim_time - sim_start).total_seconds() / speed
            delay = due - clock()
            if (delay > 0 and stop.wait(delay)) or stop.is_set():
                break
            publisher.publish(message.topic, message.payload)
            generated += 1
            bar.update()
    if duration is not None and not stop.is_set():
        # A run of a given length lasts that long, even when its last report came earlier.
        stop.wait(max(0.0, wall_start + duration.total_seconds() / speed - clock()))
    return finish(publisher, generated, wall_start, sent_before, clock)


def finish(
    publisher: Publisher,
    generated: int,
    began: float,
    sent_before: int,
    clock: Callable[[], float] = time.monotonic,
) -> RunSummary:
    """Wait for the publisher's acks and sum the run up; `sent_before` is its count at the start.

    Whatever was handed over and not delivered failed, including messages still unacknowledged
    after `FLUSH_TIMEOUT_S`.
    """
    publisher.flush(FLUSH_TIMEOUT_S)
    sent = publisher.sent - sent_before
    return RunSummary(generated, sent, generated - sent, clock() - began)
