"""Support for the cluster-mode tests: NATS nodes with their MQTT listeners, ecowatch workers as
processes, webhook receivers, one readings store, and the counts that must reconcile.

A `ClusterRig` starts `nodes` nats-server nodes (one alone, or a routed cluster), each with JetStream
and an MQTT listener, and `workers` ecowatch processes (`ecowatch run` with a `cluster:` section,
`DaemonProcess`) that share one SQLite readings store and notify the same `Receiver`s (real HTTP
servers that check every signature and count every repeated idempotency key). Stations publish
their reports over MQTT 3.1.1 QoS 1 to a node's listener, as the deployment's stations do.

    with ClusterRig(tmp_path, stations, [receiver], nodes=3, workers=3) as rig:
        rig.publish(reports)
        rig.wait_stored(len(reports) * 5)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from config.network import NetworkSpec
from config.registry import Station
from ingest.mqtt.publisher import PublisherConfig, WindowedPublisher
from simulators.formats import JsonFormat
from simulators.load import write_registry
from tests.helpers import wait_for
from tests.integration.alert_scenario_support import LOCAL, Receiver, Report
from tests.integration.daemon_process import DaemonProcess
from tests.servers import NatsCluster, NatsServer

# Seconds a stage may take on a loaded two-core machine (a pass takes a few; a killed
# dispatcher's in-flight notification alone waits out the outbox's 30 s ack_wait).
WAIT: Final = 180.0
LEASE_TTL: Final = "PT2S"
RENEW: Final = "PT0.5S"


class ClusterRig:
    """NATS nodes, ecowatch workers, receivers and the shared store (see the module docstring)."""

    def __init__(
        self,
        tmp_path: Path,
        stations: Sequence[Station],
        receivers: Sequence[Receiver],
        *,
        nodes: int = 1,
        workers: int = 1,
        partitions: int = 8,
        checkpoint_interval: str = "PT2S",
        running: int | None = None,
        network: NetworkSpec | None = None,
        cluster: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        """`running`: how many of the workers `start` starts (default all; the others wait for a
        test to start them); `network`: the registry's river network; `cluster`: more keys of the
        workers' `cluster:` section; `settings`: more top-level sections of their configuration."""
        self.tmp_path = tmp_path
        self.stations = list(stations)
        self.receivers = list(receivers)
        self.store = tmp_path / "readings.db"
        self.registry = tmp_path / "stations.yaml"
        write_registry(self.stations, self.registry, note="cluster tests", network=network)
        self.cluster: NatsCluster | None = None
        self.single: NatsServer | None = None
        if nodes == 1:
            self.single = NatsServer(tmp_path / "nats", server_name="n1", mqtt=True)
        else:
            self.cluster = NatsCluster(tmp_path / "nats", size=nodes, mqtt=True)
            for node in self.cluster.nodes:
                _replicate_mqtt_streams(node, min(3, nodes))
        self.partitions = partitions
        self._checkpoint_interval = checkpoint_interval
        self._cluster = dict(cluster or {})
        self._settings = dict(settings or {})
        self.workers = [self._worker(f"w{i + 1}") for i in range(workers)]
        self._running = workers if running is None else running
        self.published = 0

    @property
    def nodes(self) -> list[NatsServer]:
        if self.single is not None:
            return [self.single]
        assert self.cluster is not None
        return self.cluster.nodes

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def _worker(self, name: str) -> DaemonProcess:
        config: dict[str, Any] = {
            "registry": str(self.registry),
            "cluster": {
                "servers": [],  # set at start, once the nodes' ports are known
                "partitions": self.partitions,
                "worker_id": name,
                "lease_ttl": LEASE_TTL,
                "renew_interval": RENEW,
                "replicas": min(3, len(self.nodes)),
                "checkpoint_interval": self._checkpoint_interval,
                "batch": 200,
                "stream_max_bytes": 256 * 2**20,  # the test nodes store 1 GB each
                **self._cluster,
            },
            "sinks": [{"type": "sqlite", "name": "store", "path": str(self.store)}],
            "notify": {"receivers": [r.config() for r in self.receivers]},
            **self._settings,
        }
        return DaemonProcess(self.tmp_path / name, config)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.single is not None:
            self.single.start()
        else:
            assert self.cluster is not None
            self.cluster.start()
        for index, worker in enumerate(self.workers):
            _set_servers(worker, self.urls)
            if index < self._running:
                worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.close()
        if self.single is not None:
            self.single.stop()
        if self.cluster is not None:
            self.cluster.stop()

    def __enter__(self) -> Self:
        try:
            for receiver in self.receivers:
                receiver.__enter__()
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        for receiver in self.receivers:
            receiver.__exit__(exc_type, exc, tb)

    # -- stations ---------------------------------------------------------------------------------

    def publish(self, reports: Iterable[Report], *, node: int = 0) -> int:
        """Publish the reports over MQTT QoS 1 to `node`'s listener; every one acknowledged."""
        encoder = JsonFormat()
        messages = [m for r in reports for m in encoder.encode(r.station, r.ts.astimezone(LOCAL), r.values)]
        port = self.nodes[node].mqtt_port
        assert port is not None
        options = PublisherConfig(port=port, protocol="3.1.1", client_id=f"stations-{self.published}")
        with WindowedPublisher(options) as publisher:
            for topic, payload in messages:
                publisher.publish(topic, payload)
            assert publisher.flush(60), "the MQTT listener did not acknowledge every report"
        self.published += len(messages)
        return len(messages)

    # -- what the store and the receivers hold ----------------------------------------------------

    def stored(self) -> int:
        if not self.store.exists():
            return 0
        with closing(sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=10)) as db:
            try:
                (count,) = db.execute("SELECT COUNT(*) FROM readings").fetchone()
            except sqlite3.OperationalError:
                return 0
        return int(count)

    def wait_stored(self, count: int, timeout: float = WAIT) -> None:
        wait_for(
            lambda: self.stored() >= count, f"{count} readings in the store", timeout, detail=self.explain
        )

    def explain(self) -> str:
        lines = [f"stored {self.stored()}"]
        for worker in self.workers:
            if worker.running:
                try:
                    stats = worker.stats()
                except Exception as exc:  # a stopped or frozen worker
                    lines.append(f"{worker.folder.name}: {exc!r}")
                    continue
                lines.append(f"{worker.folder.name}: owned {stats.get('owned')} source {stats.get('source')}")
            # Log lines cut short: a traceback in a JSON line would bury the rest.
            lines.extend(line[:400] for line in worker.log_tail(8).splitlines())
        return "\n".join(lines)


def _replicate_mqtt_streams(node: NatsServer, replicas: int) -> None:
    """`mqtt { stream_replicas: N }`, as deploy/cluster/nats/nats.conf sets it. Unset, the node of
    the first MQTT connection made the $MQTT_* streams with 2 replicas in a run here ("Creating MQTT
    streams/consumers with replicas 2"), and with one of those two nodes killed every QoS 1 PUBLISH
    stalled ("no JetStream ack within 5s; closing the connection")."""
    text = node.config_file.read_text()
    assert "mqtt {\n" in text
    node.config_file.write_text(text.replace("mqtt {\n", f"mqtt {{\n  stream_replicas: {replicas}\n", 1))


def _set_servers(worker: DaemonProcess, urls: list[str]) -> None:
    import yaml

    document = yaml.safe_load(worker.config_file.read_text(encoding="utf-8"))
    document["cluster"]["servers"] = urls
    worker.config_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
