"""`ecowatch run` as a process: SIGTERM flushes and exits 0, SIGKILL loses nothing logged, /readyz follows the broker."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

from tests.integration.daemon_process import DaemonProcess
from tests.integration.fault_support import (
    SINK,
    BackgroundPublisher,
    check_reconciled,
    check_stored,
    daemon_config,
    make_stream,
    wait_until_stored,
)
from tests.servers import MosquittoServer, VictoriaMetricsServer

pytestmark = pytest.mark.integration

MESSAGES: Final = 3000
SETTLE_SECONDS: Final = 120.0


def _offset_file(daemon: DaemonProcess, log: str, consumer: str) -> int:
    return int((daemon.data_dir / "wal" / log / "offsets" / f"{consumer}.offset").read_text())


def test_sigterm_mid_stream_flushes_acknowledges_and_exits_0(
    tmp_path: Path, mosquitto: MosquittoServer, victoria_metrics: VictoriaMetricsServer
) -> None:
    """SIGTERM while messages flow: exit 0 with everything logged acknowledged, processed and written."""
    stream = make_stream(tmp_path / "stream", MESSAGES)
    daemon = DaemonProcess(tmp_path / "daemon", daemon_config(mosquitto.port, victoria_metrics.url, stream))
    with daemon:
        publisher = BackgroundPublisher(mosquitto.port, stream.messages).start()
        daemon.wait_for(lambda s: s["logs"]["raw_logged"] >= MESSAGES // 3, SETTLE_SECONDS, "a third logged")
        assert daemon.terminate() == 0
        stopped = daemon.events("daemon_stopped")[-1]
        # Within the grace period the processor and the sink caught up with everything logged.
        assert stopped["raw_processed"] == stopped["raw_logged"] > 0
        assert _offset_file(daemon, "readings", f"sink.{SINK}") == stopped["readings_logged"]

        daemon.start()
        publisher.join()
        stats = wait_until_stored(daemon, victoria_metrics, stream, SETTLE_SECONDS)
        check_stored(victoria_metrics, stream)
        # Every message logged before the stop was acknowledged then: the broker redelivered none.
        check_reconciled(stats, stream, single_run=False, redelivered=False)
        assert daemon.terminate() == 0


def test_sigkill_loses_nothing_that_was_logged(
    tmp_path: Path, mosquitto: MosquittoServer, victoria_metrics: VictoriaMetricsServer
) -> None:
    """SIGKILL after logging, then a clean session (the broker forgets us): the log alone delivers everything."""
    stream = make_stream(tmp_path / "stream", MESSAGES)
    victoria_metrics.stop()  # nothing reaches the database before the kill
    daemon = DaemonProcess(tmp_path / "daemon", daemon_config(mosquitto.port, victoria_metrics.url, stream))
    with daemon:
        publisher = BackgroundPublisher(mosquitto.port, stream.messages).start()
        publisher.join()
        daemon.wait_for(lambda s: s["logs"]["raw_logged"] == MESSAGES, SETTLE_SECONDS, "every message logged")
        daemon.kill()
        victoria_metrics.start()
        daemon.start(env={"ECOWATCH_MQTT__CLEAN_START": "true"})
        stats = wait_until_stored(daemon, victoria_metrics, stream, SETTLE_SECONDS)
        check_stored(victoria_metrics, stream)
        check_reconciled(stats, stream, single_run=False, redelivered=False)
        assert daemon.terminate() == 0


def test_readyz_follows_the_broker(
    tmp_path: Path, mosquitto: MosquittoServer, victoria_metrics: VictoriaMetricsServer
) -> None:
    """/readyz answers 503 naming mqtt while the broker is down, and 200 once the daemon has reconnected."""
    stream = make_stream(tmp_path / "stream", 1)
    daemon = DaemonProcess(tmp_path / "daemon", daemon_config(mosquitto.port, victoria_metrics.url, stream))
    with daemon:
        daemon.wait_ready(30)
        mosquitto.stop()
        problems = daemon.wait_ready(30, ready=False)["problems"]
        assert "mqtt" in problems
        mosquitto.start()
        assert daemon.wait_ready(30) == {"ready": True}
        assert daemon.terminate() == 0
