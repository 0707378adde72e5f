"""The daemon on JetStream (`wal.backend: jetstream`): its logs as R3 streams on a three-node NATS cluster.

`ecowatch run` as a process, a real Mosquitto and three real nats-server nodes on loopback. A paced
paho publisher (QoS 1) sends a stream of identifiable readings with a few malformed messages among
them, while a NATS node is killed (-9) and brought back, or while the daemon itself is stopped and
killed and started again on the same streams. Each test reads the embedded SQLite store back and
asserts that every published reading is there exactly once with its value, that what the daemon
received is what it stored plus what it dead-lettered, and that its durable counts reconcile.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest

from ingest.mqtt import PublisherConfig, WindowedPublisher
from simulators.load import LOAD_CODES
from tests.integration.daemon_process import DaemonProcess, Stats
from tests.integration.fault_support import TOPIC_TEMPLATE, Expected, Stream, make_stream
from tests.servers import MissingServerBinaryError, MosquittoServer, NatsCluster, NatsServer

pytestmark = pytest.mark.integration

GOOD: Final = 2400  # messages of 8 readings each
BAD_EVERY: Final = 100  # one malformed message after every 100 good ones
BAD: Final = GOOD // BAD_EVERY
TOTAL: Final = GOOD + BAD
RATE: Final = 500.0  # messages per second: publishing spans the faults
STREAM: Final = "eco"  # the daemon's streams: eco-raw and eco-readings
QUOTA: Final = 64 * 2**20  # per stream
SINK: Final = "sqlite"  # the embedded store, used when no sink is configured
SETTLE_SECONDS: Final = 60.0
MALFORMED: Final = b'{"station_id": "truncated'


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A three-node NATS cluster with JetStream, of this test alone."""
    try:
        nats = NatsCluster(tmp_path / "nats")
    except MissingServerBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    with nats:
        yield nats


@dataclass
class PacedPublisher:
    """Publishes messages at QoS 1 at about `rate` per second from a thread (paho, bounded window)."""

    port: int
    messages: list[tuple[str, bytes]]
    rate: float = RATE
    published: int = 0
    error: BaseException | None = None
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> PacedPublisher:
        self._thread = threading.Thread(target=self._run, name="paced-publisher", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float = SETTLE_SECONDS) -> None:
        """Wait until the broker acknowledged every message; fail if one was refused or lost."""
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"publishing took over {timeout} s ({self.published} sent)"
        assert self.error is None, f"publishing failed: {self.error!r}"

    def _run(self) -> None:
        chunk = max(1, int(self.rate / 20))
        options = PublisherConfig(port=self.port, client_id="cluster-log-publisher", max_unacked=1000)
        try:
            with WindowedPublisher(options) as publisher:
                for start in range(0, len(self.messages), chunk):
                    for topic, payload in self.messages[start : start + chunk]:
                        publisher.publish(topic, payload)
                        self.published += 1
                    self._done.wait(chunk / self.rate)  # pacing, not awaiting anything
                if not publisher.flush(SETTLE_SECONDS):
                    raise AssertionError("the broker did not acknowledge every message")
            if publisher.failed or publisher.sent != len(self.messages):
                raise AssertionError(f"the broker acknowledged {publisher.sent} of {len(self.messages)}")
        except BaseException as exc:  # reported by join()
            self.error = exc


def with_malformed(stream: Stream) -> list[tuple[str, bytes]]:
    """The stream's messages with a malformed one (on a valid topic) after every BAD_EVERY."""
    out: list[tuple[str, bytes]] = []
    for index, (topic, payload) in enumerate(stream.messages, start=1):
        out.append((topic, payload))
        if index % BAD_EVERY == 0:
            out.append((topic, MALFORMED))
    assert len(out) == TOTAL
    return out


def cluster_config(
    mqtt_port: int, nats: NatsCluster | NatsServer, stream: Stream, replicas: int = 3
) -> dict[str, Any]:
    """A daemon on JetStream (R3) reading our JSON topics into its embedded SQLite store."""
    urls = nats.urls if isinstance(nats, NatsCluster) else [nats.url]
    return {
        "registry": str(stream.registry_file),
        "mqtt": {
            "port": mqtt_port,
            "client_id": "ecowatch-cluster-log",
            "reconnect_min_delay": "PT0.1S",
            "reconnect_max_delay": "PT1S",
            "subscriptions": [
                {"topic": TOPIC_TEMPLATE, "format": "json", "tags": {"kind": {"values": ["water"]}}}
            ],
        },
        "wal": {
            "backend": "jetstream",
            # The quota must fit each node's max_file_store (1 GB in tests), or no peer can hold it.
            "jetstream": {"servers": urls, "stream": STREAM, "replicas": replicas, "quota_bytes": QUOTA},
        },
        "shutdown_grace": "PT10S",
    }


def logged(count: int) -> Any:
    """A stats predicate: the raw log holds at least `count` messages."""
    return lambda stats: stats["logs"]["raw_logged"] >= count


def settled(stats: Stats) -> bool:
    """Every message published is logged and nothing is in flight: processed, stored, evaluated."""
    logs, sink, alerts = stats["logs"], stats["sinks"][SINK], stats["alerts"]
    return bool(
        logs["raw_logged"] >= TOTAL
        and logs["raw_processed"] == logs["raw_logged"]
        and sink["pending"] == 0
        and sink["committed"] == logs["readings_logged"]
        and alerts["pending"] == 0
        and stats["held_messages"] == 0
    )


def check_stored_once(database: Path, expected: Expected) -> None:
    """The SQLite store holds every reading of the stream exactly once, with its value, and nothing else."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT parameter, station_id, time_ns, value FROM readings").fetchall()
    stored: dict[tuple[str, str, int], float] = {}
    for parameter, station_id, time_ns, value in rows:
        key = (parameter, station_id, time_ns // 1_000_000)
        assert key not in stored, f"{key} stored twice"
        stored[key] = value
    want = {(p, s, t): v for (p, s), times in expected.items() for t, v in times.items()}
    missing, extra = want.keys() - stored.keys(), stored.keys() - want.keys()
    wrong = [k for k in want.keys() & stored.keys() if stored[k] != want[k]]
    problems = (
        f"{len(missing)} missing (e.g. {sorted(missing)[:3]}), {len(extra)} unexpected, {len(wrong)} wrong"
    )
    assert not missing, problems
    assert not extra, problems
    assert not wrong, problems
    assert len(rows) == GOOD * len(LOAD_CODES)


def counter(stats: Stats, name: str) -> float:
    return float(stats["counters"].get(name, 0.0))


def check_reconciled(stats: Stats, *, redelivered: int) -> None:
    """The durable counts agree with each other and with the stream; `redelivered`: messages the
    broker sent twice (after a restart of the daemon), which the raw log holds twice."""
    logs, sink = stats["logs"], stats["sinks"][SINK]
    assert stats["wal"]["backend"] == "jetstream", stats["wal"]
    assert f"{STREAM}-raw@" in stats["wal"]["raw"], stats["wal"]
    assert logs["raw_logged"] == TOTAL + redelivered, logs
    assert logs["raw_processed"] == logs["raw_logged"], logs
    assert sink["committed"] == logs["readings_logged"] == stats["alerts"]["committed"], stats
    assert not sink["down"], sink
    assert not stats["raw_log_full"], stats
    # Received = stored + dead-lettered: each good message is one readings record (more only if a
    # crash made the processor repeat a batch), each malformed one a dead letter.
    malformed = stats["deadletters"].get("malformed", 0)
    assert set(stats["deadletters"]) == {"malformed"}, stats["deadletters"]
    assert BAD <= malformed <= BAD + redelivered, stats["deadletters"]
    assert logs["readings_logged"] >= logs["raw_processed"] - malformed, logs
    if redelivered == 0:
        assert malformed == BAD
        assert logs["readings_logged"] == GOOD, logs


def test_every_reading_is_stored_once_through_a_nats_node_killed_and_brought_back(
    tmp_path: Path, mosquitto: MosquittoServer, cluster: NatsCluster
) -> None:
    """kill -9 of the raw stream's leader mid-stream: the daemon rides out the election on the other two
    nodes; every reading is stored once, received = stored + dead-lettered, the counters reconcile."""
    stream = make_stream(tmp_path / "stream", GOOD)
    daemon = DaemonProcess(tmp_path / "daemon", cluster_config(mosquitto.port, cluster, stream))
    with daemon:
        assert daemon.wait_ready(30) == {"ready": True}
        publisher = PacedPublisher(mosquitto.port, with_malformed(stream)).start()
        before = daemon.wait_for(logged(TOTAL // 4), SETTLE_SECONDS, "a quarter logged")
        leader = cluster.stream_leader(f"{STREAM}-raw")
        leader.kill()
        # The stream goes on with two of three nodes: more is logged while the node is down.
        down = before["logs"]["raw_logged"]
        daemon.wait_for(logged(down + TOTAL // 4), SETTLE_SECONDS, "logging resumed without the node")
        leader.start()
        cluster.wait_healthy()
        publisher.join()
        stats = daemon.wait_for(settled, SETTLE_SECONDS, "everything stored")
        check_stored_once(daemon.data_dir / "readings.db", stream.expected)
        # One process saw everything and Mosquitto was not restarted: nothing was sent twice.
        check_reconciled(stats, redelivered=0)
        received = counter(stats, "ecowatch_messages_received_total")
        assert received == counter(stats, "ecowatch_messages_logged_total") == TOTAL, stats["counters"]
        accepted = counter(stats, "ecowatch_messages_processed_total{outcome=accepted}")
        rejected = counter(stats, "ecowatch_messages_processed_total{outcome=rejected}")
        assert (accepted, rejected) == (GOOD, BAD), stats["counters"]
        written = counter(stats, f"ecowatch_sink_readings_written_total{{sink={SINK}}}")
        assert written == GOOD * len(LOAD_CODES), stats["counters"]
        assert daemon.wait_ready(30) == {"ready": True}
        assert daemon.terminate() == 0


def test_a_daemon_restarted_on_the_same_streams_resumes_without_loss_or_duplicates(
    tmp_path: Path, mosquitto: MosquittoServer, cluster: NatsCluster
) -> None:
    """SIGTERM, then kill -9, each mid-stream, and a start on the same streams: the new process resumes
    at the committed offsets; every reading is stored once and the durable counts reconcile."""
    stream = make_stream(tmp_path / "stream", GOOD)
    daemon = DaemonProcess(tmp_path / "daemon", cluster_config(mosquitto.port, cluster, stream))
    with daemon:
        publisher = PacedPublisher(mosquitto.port, with_malformed(stream)).start()
        daemon.wait_for(logged(TOTAL // 4), SETTLE_SECONDS, "a quarter logged")
        assert daemon.terminate() == 0
        stopped = daemon.events("daemon_stopped")[-1]
        assert stopped["raw_processed"] == stopped["raw_logged"] >= TOTAL // 4

        daemon.start()
        # The counts live in the streams: the new process starts from them, not from zero.
        restarted = daemon.stats()["logs"]
        assert restarted["raw_logged"] >= stopped["raw_logged"], (stopped, restarted)
        assert restarted["raw_processed"] >= stopped["raw_processed"], (stopped, restarted)
        daemon.wait_for(logged(TOTAL // 2), SETTLE_SECONDS, "half logged")
        daemon.kill()

        daemon.start()
        publisher.join()
        stats = daemon.wait_for(settled, SETTLE_SECONDS, "everything stored")
        check_stored_once(daemon.data_dir / "readings.db", stream.expected)
        # What the killed process logged but had not acknowledged, Mosquitto sent again.
        check_reconciled(stats, redelivered=stats["logs"]["raw_logged"] - TOTAL)
        assert daemon.terminate() == 0


def test_readyz_and_stats_name_the_jetstream_log_and_follow_its_server(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    """/api/v1/stats names the backend and both streams; /readyz answers 503 naming the raw and the
    readings stream while their (single) NATS server is down, and 200 once the daemon reconnected."""
    try:
        nats = NatsServer(tmp_path / "nats")
    except MissingServerBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    stream = make_stream(tmp_path / "stream", 1)
    with nats, DaemonProcess(tmp_path / "daemon", cluster_config(mosquitto.port, nats, stream, 1)) as daemon:
        assert daemon.wait_ready(30) == {"ready": True}
        assert daemon.stats()["wal"] == {
            "backend": "jetstream",
            "raw": f"jetstream:{STREAM}-raw@{nats.url}",
            "readings": f"jetstream:{STREAM}-readings@{nats.url}",
        }
        nats.stop()
        problems = daemon.wait_ready(30, ready=False)["problems"]
        assert problems["wal"].startswith(f"jetstream:{STREAM}-raw@"), problems
        assert problems["readings_wal"].startswith(f"jetstream:{STREAM}-readings@"), problems
        assert "not connected" in problems["wal"], problems
        nats.start()
        assert daemon.wait_ready(30) == {"ready": True}
        assert daemon.terminate() == 0
