"""SIGKILL in the middle of writing: the alert database stays consistent and a replay notifies nothing twice."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from contextlib import closing
from datetime import timedelta
from pathlib import Path

from alerts.service import AlertService
from config.times import to_ns
from tests.alerts.engine_support import T0, events, make_service, one_station_registry, rules_config, water
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
HOUR_NS = 3_600_000_000_000
RULE = {
    "name": "compliance_drop",
    "kind": "compliance_drop",
    "recovery": {"samples": 1},
    "min_refire_interval": "PT0S",
}
# Hour i of the stream: NH3-N out of class II for two hours in every three, so it fires and resolves.
WRITER = textwrap.dedent(
    f"""
    import sys
    from datetime import timedelta
    from pathlib import Path
    import structlog
    structlog.configure(processors=[], logger_factory=structlog.ReturnLoggerFactory())
    from tests.alerts.engine_support import T0, FakeClock, make_service, one_station_registry, rules_config, water
    clock = FakeClock()
    service = make_service(Path(sys.argv[1]), one_station_registry(), rules_config({RULE!r}), clock)
    for i in range(1_000_000):
        clock.now = T0 + timedelta(hours=i)
        service.write(water(clock.now, nh3n=1.2 if i % 3 else 0.3))
    """
)


def _stream(service: AlertService, hours: range) -> None:
    for i in hours:
        service.write(water(T0 + timedelta(hours=i), nh3n=1.2 if i % 3 else 0.3))


def _event_count(db: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as connection:
            return int(connection.execute("SELECT count(*) FROM notification_events").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_sigkill_mid_stream_then_replay(tmp_path: Path) -> None:
    """After SIGKILL, every alert's events are numbered 1..sequence, and replaying the stream adds only what is new."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT, env=env)
    try:

        def forty_events() -> bool:
            if _event_count(tmp_path / "alerts.db") >= 40:
                return True
            assert child.poll() is None, "the writer died on its own"
            return False

        wait_for(forty_events, "the writer's first 40 events", 20.0)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    service = make_service(tmp_path, one_station_registry(), rules_config(RULE))
    [record] = service.engine.alerts.values()
    written = events(service)
    keys = [e.key for e in written]
    assert keys == [f"{record.alert_id}:{n}" for n in range(1, record.sequence + 1)]
    statuses = [e.status for e in written]
    assert all(a != b for a, b in itertools.pairwise(statuses))  # firing, resolved, firing...
    assert (statuses[-1] == "firing") == (record.state.value == "firing")

    watermark = service.engine.windows["st-1"].watermark_ns
    assert watermark is not None
    hours_done = (watermark - to_ns(T0)) // HOUR_NS + 1
    _stream(service, range(hours_done))  # the replay: all of it was evaluated before the kill
    assert [e.key for e in events(service)] == keys
    _stream(service, range(hours_done, hours_done + 6))
    more = Counter(e.status for e in events(service)[len(keys) :])
    assert more == Counter({"firing": 2, "resolved": 2})
    service.close()
