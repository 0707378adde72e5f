"""Run modes: paced (real time and accelerated) and backfill, and the summary they return."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from config.registry import Station
from simulators.runner import RunSummary, drain, run_realtime
from simulators.simulator import Simulator
from tests.simulators.support import T0, CollectingPublisher


class _StopAfter(CollectingPublisher):
    """Sets a stop event once it has received `count` messages."""

    def __init__(self, stop: threading.Event, count: int) -> None:
        super().__init__()
        self._stop, self._count = stop, count

    def publish(self, topic: str, payload: bytes) -> None:
        super().publish(topic, payload)
        if self.sent >= self._count:
            self._stop.set()


def test_an_accelerated_run_paces_messages_to_simulated_time(demo_stations: list[Station]) -> None:
    """At speed 1200, ten simulated minutes take half a wall second and send every report once."""
    simulator = Simulator(demo_stations[:4], report_interval=timedelta(minutes=1))
    publisher = CollectingPublisher()
    began = time.monotonic()
    summary = simulator.run_realtime(
        publisher, threading.Event(), speed=1200, start=T0, duration=timedelta(minutes=10), progress=False
    )
    elapsed = time.monotonic() - began
    expected = 10 * sum(len(s.kinds) for s in demo_stations[:4])  # a message per kind per report
    assert summary.generated == summary.sent == len(publisher.messages) == expected
    # Ten simulated minutes are half a wall second at this speed, and the run lasts that long.
    assert summary.elapsed_s >= 0.5
    assert 0.5 <= elapsed < 5.0


def test_a_stop_event_ends_a_run_early_and_still_sums_it_up(demo_stations: list[Station]) -> None:
    """Setting the stop event ends an endless real-time run after the message in hand."""
    stop = threading.Event()
    publisher = _StopAfter(stop, 7)
    simulator = Simulator(demo_stations, report_interval=timedelta(seconds=1))
    summary = run_realtime(simulator, publisher, stop, speed=100.0, start=T0, progress=False)
    assert (summary.generated, summary.sent, summary.failed) == (7, 7, 0)


def test_drain_counts_what_the_publisher_did_not_deliver() -> None:
    """Messages a publisher failed to deliver show as failed in the summary, the rest as sent."""

    class _Lossy(CollectingPublisher):
        def publish(self, topic: str, payload: bytes) -> None:
            if payload.endswith(b"3"):
                self.failed += 1
            else:
                super().publish(topic, payload)

    summary = drain([("t", b"%d" % i) for i in range(20)], _Lossy(), progress=False)
    assert (summary.generated, summary.sent, summary.failed) == (20, 18, 2)


def test_the_summary_states_counts_and_rate() -> None:
    """The summary reads as a sentence with the delivered rate."""
    summary = RunSummary(generated=1000, sent=990, failed=10, elapsed_s=2.0)
    assert summary.rate == 495.0
    assert str(summary) == "sent 990, failed 10 of 1000 in 2.0 s (495 msg/s)"
