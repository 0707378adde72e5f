"""Fault injection: the daemon as a process, real Mosquitto and VictoriaMetrics, faults mid-stream.

Each test publishes a stream of identifiable readings at QoS 1 from a real client, injects one kind
of fault while the daemon is working through it, and then asserts exactly: every reading is in the
database once with its value and time (`check_stored`), and the daemon's counts reconcile
(`check_reconciled`). The default run uses `ECOWATCH_FAULT_MESSAGES` messages (20 000) per test; the
`fault` marker runs the same tests at 100 000 messages (800 000 readings) each:

    .venv/bin/pytest -m fault tests/integration/test_faults.py
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pytest

from tests.integration.daemon_process import DaemonProcess, Stats
from tests.integration.fault_support import (
    SINK,
    BackgroundPublisher,
    Stream,
    check_reconciled,
    check_stored,
    counter,
    daemon_config,
    logged_at_least,
    make_stream,
    wait_until_stored,
)
from tests.servers import MosquittoServer, VictoriaMetricsServer

pytestmark = pytest.mark.integration

SMALL: Final = int(os.environ.get("ECOWATCH_FAULT_MESSAGES", "20000"))
FULL: Final = 100_000
SIZES: Final = [
    pytest.param(SMALL, id="small", marks=pytest.mark.timeout(300)),
    pytest.param(FULL, id="full", marks=[pytest.mark.fault, pytest.mark.timeout(1800)]),
]
# The smallest quota and segments the settings allow: a few thousand messages fill the logs.
SMALL_WAL: Final = {"segment_bytes": 2**16, "quota_bytes": 2**20}


def _settle_timeout(n: int) -> float:
    return 60.0 + n / 400


def _daemon(
    tmp_path: Path, broker: MosquittoServer, vm: VictoriaMetricsServer, stream: Stream, **extra: Any
) -> DaemonProcess:
    return DaemonProcess(tmp_path / "daemon", daemon_config(broker.port, vm.url, stream, **extra))


def _holding(stats: Stats) -> bool:
    """The log is full and every message received is either logged (and acked) or held (not acked)."""
    received = counter(stats, "ecowatch_messages_received_total")
    logged = counter(stats, "ecowatch_messages_logged_total")
    return bool(
        stats["raw_log_full"]
        and logged == stats["logs"]["raw_logged"]
        and received == logged + stats["held_messages"]
    )


def _problems(daemon: DaemonProcess) -> dict[str, str]:
    status, body = daemon.readyz()
    problems: dict[str, str] = body.get("problems", {}) if status == 503 else {}
    return problems


@pytest.mark.parametrize("n", SIZES)
def test_sigkill_mid_stream_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, mosquitto: MosquittoServer, victoria_metrics: VictoriaMetricsServer, n: int
) -> None:
    """SIGKILL three times while messages flow, restarting each time: every reading stored once."""
    stream = make_stream(tmp_path / "stream", n)
    with _daemon(tmp_path, mosquitto, victoria_metrics, stream) as daemon:
        publisher = BackgroundPublisher(mosquitto.port, stream.messages).start()
        for fraction in (0.2, 0.45, 0.7):
            daemon.wait_for(logged_at_least(int(fraction * n)), _settle_timeout(n), f"{fraction:.0%} logged")
            daemon.kill()
            daemon.start()
        publisher.join()
        stats = wait_until_stored(daemon, victoria_metrics, stream, _settle_timeout(n))
        check_stored(victoria_metrics, stream)
        check_reconciled(stats, stream, single_run=False, redelivered=True)
        assert daemon.terminate() == 0
    assert len(daemon.events("daemon_started")) == 4


@pytest.mark.parametrize("n", SIZES)
def test_broker_restart_mid_stream_keeps_the_queued_session(
    tmp_path: Path, mosquitto: MosquittoServer, victoria_metrics: VictoriaMetricsServer, n: int
) -> None:
    """The broker restarts with the daemon's session queued: it reconnects, resumes, loses nothing."""
    stream = make_stream(tmp_path / "stream", n)
    with _daemon(tmp_path, mosquitto, victoria_metrics, stream) as daemon:
        publisher = BackgroundPublisher(mosquitto.port, stream.messages).start()
        daemon.wait_for(logged_at_least(n // 3), _settle_timeout(n), "a third logged")
        mosquitto.stop()
        mosquitto.check_persisted()
        daemon.poll_until(lambda: "mqtt" in _problems(daemon), 30, "/readyz reports the broker down")
        mosquitto.start()
        daemon.wait_ready(30)
        publisher.join()
        stats = wait_until_stored(daemon, victoria_metrics, stream, _settle_timeout(n))
        check_stored(victoria_metrics, stream)
        check_reconciled(stats, stream, single_run=True, redelivered=True)
        assert daemon.terminate() == 0
    connects = daemon.events("mqtt_connected")
    assert len(connects) >= 2
    assert connects[-1]["session_present"] is True


@pytest.mark.parametrize("n", SIZES)
def test_database_outage_past_the_retry_budget_drains_when_it_returns(
    tmp_path: Path, mosquitto: MosquittoServer, victoria_metrics: VictoriaMetricsServer, n: int
) -> None:
    """The database is down past the retry budget: the sink is reported down, logging goes on, it drains after."""
    stream = make_stream(tmp_path / "stream", n)
    with _daemon(tmp_path, mosquitto, victoria_metrics, stream) as daemon:
        publisher = BackgroundPublisher(mosquitto.port, stream.messages).start()
        daemon.wait_for(lambda s: s["sinks"][SINK]["committed"] > 0, _settle_timeout(n), "a first write")
        victoria_metrics.stop()
        daemon.poll_until(lambda: f"sink.{SINK}" in _problems(daemon), 30, "/readyz reports the sink down")
        # The source and the processor go on: the whole stream is logged while the database is away.
        publisher.join()
        stats = daemon.wait_for(
            lambda s: s["logs"]["raw_processed"] >= n, _settle_timeout(n), "the stream logged and processed"
        )
        assert stats["sinks"][SINK]["down"] is True
        assert stats["sinks"][SINK]["pending"] > 0
        victoria_metrics.start()
        stats = wait_until_stored(daemon, victoria_metrics, stream, _settle_timeout(n))
        daemon.wait_ready(30)
        check_stored(victoria_metrics, stream)
        check_reconciled(stats, stream, single_run=True, redelivered=False)
        assert daemon.terminate() == 0
    assert daemon.events("sink_down")
    assert daemon.events("sink_recovered")


@pytest.mark.parametrize("n", SIZES)
def test_full_log_holds_acknowledgements_and_resumes_by_itself(
    tmp_path: Path, mosquitto: MosquittoServer, victoria_metrics: VictoriaMetricsServer, n: int
) -> None:
    """With the database down the logs fill their quota: acks are held, the broker keeps the rest, then all drains."""
    stream = make_stream(tmp_path / "stream", n)
    victoria_metrics.stop()
    with _daemon(tmp_path, mosquitto, victoria_metrics, stream, wal=SMALL_WAL) as daemon:
        publisher = BackgroundPublisher(mosquitto.port, stream.messages).start()
        daemon.wait_for(
            lambda s: s["raw_log_full"] and s["held_messages"] > 0, _settle_timeout(n), "the raw log full"
        )
        daemon.poll_until(lambda: "wal" in _problems(daemon), 30, "/readyz reports the full log")
        publisher.join()
        # Everything is published; the daemon has acknowledged only what it logged, holds the
        # messages it received since (unacknowledged, so the broker stops sending at the in-flight
        # window), and the broker keeps the rest.
        stuck = daemon.wait_for(_holding, 30, "received = logged + held, with the log full")
        assert stuck["logs"]["raw_logged"] + stuck["held_messages"] < n
        victoria_metrics.start()
        stats = wait_until_stored(daemon, victoria_metrics, stream, _settle_timeout(n))
        daemon.wait_ready(30)
        check_stored(victoria_metrics, stream)
        check_reconciled(stats, stream, single_run=True, redelivered=False)
        assert daemon.terminate() == 0
    assert daemon.events("wal_full")
    assert daemon.events("wal_space_recovered")


# The bound: after an outage, writing resumes within this long of the database's return.
RESUME_BOUND_S: Final = 2.0


@pytest.mark.parametrize("fault", ["outage", "hang"])
def test_writing_resumes_within_two_seconds_of_the_database_returning(
    tmp_path: Path, mosquitto: MosquittoServer, victoria_metrics: VictoriaMetricsServer, fault: str
) -> None:
    """With the default backoff (up to 30 s), a 12 s outage or hang ends in a write within 2 s of the return."""
    stream = make_stream(tmp_path / "stream", 2000)
    backoff = {"retry_initial_delay": "PT0.2S", "retry_max_delay": "PT30S", "retry_budget": "PT60S"}
    config = daemon_config(mosquitto.port, victoria_metrics.url, stream)
    config["sinks"][0] |= backoff
    with DaemonProcess(tmp_path / "daemon", config) as daemon:
        publisher = BackgroundPublisher(mosquitto.port, stream.messages[:1000]).start()
        daemon.wait_for(lambda s: s["sinks"][SINK]["committed"] > 0, 60, "a first write")
        publisher.join()
        if fault == "outage":
            victoria_metrics.stop()
        else:
            victoria_metrics.pause()
        BackgroundPublisher(mosquitto.port, stream.messages[1000:]).start().join()
        daemon.wait_for(lambda s: s["logs"]["raw_processed"] >= 2000, 60, "the rest logged and processed")
        daemon.poll_until(lambda: bool(daemon.events("sink_write_failed")), 30, "a failed write")
        time.sleep(12)  # the outage itself: long enough for the backoff to grow past the bound
        if fault == "outage":
            victoria_metrics.start()  # returns once the server answers
        else:
            victoria_metrics.resume()
        back = time.time()
        daemon.poll_until(lambda: bool(daemon.events("sink_recovered")), 30, "the sink recovered")
        recovered = datetime.fromisoformat(daemon.events("sink_recovered")[-1]["timestamp"]).timestamp()
        assert recovered - back < RESUME_BOUND_S, f"resumed {recovered - back:.1f} s after the return"
        stats = wait_until_stored(daemon, victoria_metrics, stream, 60)
        check_stored(victoria_metrics, stream)
        check_reconciled(stats, stream, single_run=True, redelivered=False)
        assert daemon.terminate() == 0
