"""A cluster worker: `ecowatch run` with a `cluster:` section.

    stations ─MQTT QoS 1─▶ NATS MQTT listener ─▶ $MQTT_msgs ─ MqttIntake (a lease: one worker) ─▶
        stream ecowatch-stations (R3, partitioned by station)
                                              │ one reader per owned partition (PartitionSource)
    Ownership (leases in KV) ─on_acquired/on_lost─▶ PartitionPipeline: decode, validate, sinks,
        the partition's alert engine, notifications → stream ecowatch-outbox (dedup by key),
        checkpoints of the alert state → KV + object store; then ack
    ReceiverDispatch per receiver (a lease each) ─▶ ReceiverSender ─▶ webhook, WeCom, DingTalk, …
    the regional role (a lease): daily assessment from the readings store, regional_period rules

Every worker runs the same process; the leases decide who does what. A worker holds about
partitions / live workers partitions and competes for every receiver's dispatch lease; adding
or losing a worker moves partitions and dispatchers within lease_ttl + 2 × renew_interval. The
worker keeps nothing another worker needs: its data_dir holds its owned partitions' working
copies (rebuilt from checkpoints) and its dead letters. See `ingest.cluster` for the lease
protocol and `ingest.app.cluster_pipeline` for what happens to a batch.

HTTP: /healthz, /readyz (connected to the cluster, every sink reachable), /metrics (with
per-partition owner, lag and redeliveries), /api/v1/stats (the worker's partitions and counts),
/api/v1/cluster (the whole cluster's ownership, `ecowatch cluster status`).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from alerts.outbox import ClusterOutboxFeed, ReceiverSender, receiver_topic
from alerts.rules import RULES, Scope
from alerts.service import AlertService
from config.files import make_private_dir, set_group_readable
from config.registry import Registry
from ingest.app.assessment_source import assessment_config, make_source
from ingest.app.cluster_pipeline import PartitionPipeline, SharedSink
from ingest.app.daemon import build_processor_core
from ingest.app.http import HTTPService
from ingest.app.settings import Settings
from ingest.cluster import (
    CheckpointStore,
    ClusterConfig,
    OutboxStream,
    Ownership,
    ReceiverDispatch,
    cluster_status,
)
from ingest.cluster.buckets import TRANSIENT
from ingest.cluster.intake import MqttIntake
from ingest.cluster.metrics import IntakeMetrics, PartitionMetrics
from ingest.cluster.partitions import PartitionKeys
from ingest.cluster.source import PartitionSource
from ingest.cluster.stations import intake_subjects
from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.errors import RejectReason, SinkError
from ingest.routes import Request
from ingest.sinks import make_sink

log = structlog.get_logger(__name__)

HOUSEKEEP_EVERY_S = 3600.0
START_RETRY_S = 60.0
METRICS_EVERY_S = 1.0
REGIONAL = 0  # the regional role's one "partition" (its lease and checkpoint)


class ClusterWorker:
    """One worker of the cluster mode; `run_forever` until SIGTERM."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        if settings.cluster is None:
            raise ValueError("cluster mode needs a `cluster:` section")
        cluster: ClusterConfig = settings.cluster
        self.settings = settings
        self.cluster = cluster
        self.registry = registry if registry is not None else Registry.load(settings.registry)
        set_group_readable(settings.data_group_readable)
        make_private_dir(settings.data_dir)
        servers = cluster.servers
        common: dict[str, Any] = {"replicas": cluster.replicas}
        lease_ttl = cluster.lease_ttl.total_seconds()
        renew_interval = cluster.renew_interval.total_seconds()
        self.ownership = Ownership(
            servers,
            partitions=cluster.partitions,
            worker_id=cluster.worker_id,
            bucket_prefix=cluster.bucket_prefix,
            on_acquired=self._on_acquired,
            on_lost=self._on_lost,
            lease_ttl=lease_ttl,
            renew_interval=renew_interval,
            **common,
        )
        self.worker_id = self.ownership.worker_id
        network = self.registry.network
        self.keys = PartitionKeys(
            network.basin if cluster.partition_by == "river_system" and network is not None else None
        )
        self.deadletters = DeadLetterStore(settings.data_dir / "deadletter.db", settings.deadletter)
        self.sinks = [SharedSink(c.name, make_sink(c)) for c in settings.effective_sinks()]
        self.checkpoints = CheckpointStore(
            servers, bucket_prefix=cluster.bucket_prefix, name=self.worker_id, **common
        )
        self.outbox = OutboxStream(servers, **common)
        assessment = assessment_config(settings)

        def make_service(partition: int, path: Path) -> AlertService:
            # Workers run no period assessment (see cluster_pipeline): no samples to keep. The
            # partition's engine watches its own stations for silence, and no regional rule.
            return AlertService(
                settings.alerts,
                self.registry,
                path,
                assessment_rules=assessment.rules,
                keep_days=assessment.keep_days,
                keep_samples=False,
                watched=lambda station_id: self.keys.partition(station_id, cluster.partitions) == partition,
                regions=False,
            )

        # Rules over the stations' stream of a whole region need every reading in one place: not run.
        # Rules over the daily assessment's figures (period) run on the regional role below.
        streamed = [r.name for r in settings.alerts.rules if RULES[r.kind].scope is Scope.REGION]
        if streamed:
            log.warning(
                "cluster_regional_rules_not_run", rules=streamed, reason="a partition sees part of a region"
            )

        make_source(assessment, settings.effective_sinks()).close()  # StoreConfigError now, not later

        def make_regional_service(_partition: int, path: Path) -> AlertService:
            # The daily assessment reads every station's results from the readings store and the
            # period rules judge its figures; it is fed no readings and watches no station.
            service = AlertService(
                settings.alerts,
                self.registry,
                path,
                assessment_rules=assessment.rules,
                results=make_source(assessment, settings.effective_sinks()),
                keep_days=assessment.keep_days,
                keep_samples=False,
                watched=lambda _station_id: False,
                regions=True,
            )
            service.start()  # its own schedule: the assessment at start and daily, ticks, housekeeping
            return service

        core = build_processor_core(settings, self.registry)

        def pipeline(
            make: Callable[[int, Path], AlertService],
            checkpoints: CheckpointStore,
            holder: Ownership,
            directory: Path,
            fingerprint: Callable[[AlertService], object] | None = None,
        ) -> PartitionPipeline:
            return PartitionPipeline(
                core=core,
                sinks=self.sinks,
                deadletters=self.deadletters,
                make_service=make,
                make_feed=lambda path: ClusterOutboxFeed(settings.notify, path),
                checkpoints=checkpoints,
                outbox=self.outbox,
                holder=holder,
                data_dir=directory,
                checkpoint_interval=cluster.checkpoint_interval.total_seconds(),
                fingerprint=fingerprint,
            )

        self.pipeline = pipeline(
            make_service, self.checkpoints, self.ownership, settings.data_dir / "cluster"
        )
        # The regional role: one worker at a time (a lease of its own) runs the daily assessment from
        # the readings store and the period rules, its state checkpointed like a partition's.
        self.regional_ownership = Ownership(
            servers,
            partitions=1,
            worker_id=self.worker_id,
            bucket_prefix=f"{cluster.bucket_prefix}-regional",
            on_acquired=self._regional_acquired,
            on_lost=self._regional_lost,
            lease_ttl=lease_ttl,
            renew_interval=renew_interval,
            **common,
        )
        self.regional_checkpoints = CheckpointStore(
            servers, bucket_prefix=f"{cluster.bucket_prefix}-regional", name=self.worker_id, **common
        )
        self.regional = pipeline(
            make_regional_service,
            self.regional_checkpoints,
            self.regional_ownership,
            settings.data_dir / "cluster" / "regional",
            fingerprint=_assessed_days,
        )
        self.source = PartitionSource(
            servers,
            self.pipeline,
            partitions=cluster.partitions,
            partition_by=cluster.partition_by,
            max_bytes=cluster.stream_max_bytes,
            batch=cluster.batch,
            name=self.worker_id,
            **common,
        )
        self.intake = MqttIntake(
            servers,
            worker_id=self.worker_id,
            bucket_prefix=cluster.bucket_prefix,
            lease_ttl=lease_ttl,
            renew_interval=renew_interval,
            batch=cluster.batch,
            subject_for=intake_subjects(key_of=self.keys.key, station_of_mn=self._station_of_mn),
            on_refused=self._dead_letter_refused,
            **common,
        )
        self.senders = {r.name: ReceiverSender(settings.notify, r.name) for r in settings.notify.receivers}
        self.dispatches = [
            ReceiverDispatch(
                servers,
                receiver_topic(name),
                sender.deliver,
                topics=[receiver_topic(name)],
                start_at="all",
                dispatcher_id=self.worker_id,
                bucket_prefix=cluster.bucket_prefix,
                lease_ttl=lease_ttl,
                renew_interval=renew_interval,
                **common,
            )
            for name, sender in self.senders.items()
        ]
        self.metrics = PartitionMetrics(self.worker_id)
        self.intake_metrics = IntakeMetrics(self.worker_id)
        token = settings.http.token.get_secret_value() if settings.http.token else None
        self.http = HTTPService(
            settings.http.host,
            settings.http.port,
            {
                ("GET", "/healthz"): lambda _r: (200, {"status": "ok", "worker": self.worker_id}),
                ("GET", "/readyz"): self._readyz,
                ("GET", "/api/v1/stats"): lambda _r: (200, self.stats()),
                ("GET", "/api/v1/cluster"): self._cluster_api,
            },
            token=token,
            config=settings.http,
        )
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._sink_problems: dict[str, str | None] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        log.info(
            "cluster_worker_starting",
            worker=self.worker_id,
            servers=len(self.cluster.servers),
            partitions=self.cluster.partitions,
            sinks=[s.name for s in self.sinks],
            receivers=sorted(self.senders),
        )
        self.deadletters.start()
        _start("checkpoints", self.checkpoints.start)
        _start("outbox", self.outbox.start)
        # The intake's consumer on the MQTT listener's store first: from then on the store keeps
        # every station message for it, even before the stations stream exists (or, upgrading a
        # stream made before the intake, before it captures the intake's subjects).
        _start("intake", self.intake.start)
        _start("source", lambda: self.source.start(self.ownership))
        _start("ownership", self.ownership.start)
        _start("regional-checkpoints", self.regional_checkpoints.start)
        _start("regional", self.regional_ownership.start)
        for dispatch in self.dispatches:
            _start(f"dispatch-{dispatch.receiver}", dispatch.start)
        self._ticker = threading.Thread(target=self._tick_loop, name="cluster-ticker", daemon=True)
        self._ticker.start()
        self.http.start()
        log.info(
            "cluster_worker_started",
            worker=self.worker_id,
            http=f"http://{self.settings.http.host}:{self.http.port}",
        )

    def stop(self) -> None:
        """Hand everything back in order: partitions (with a last checkpoint), dispatch leases."""
        if self._stop.is_set():
            return
        self._stop.set()
        log.info("cluster_worker_stopping", worker=self.worker_id)
        self.intake.stop()
        for dispatch in self.dispatches:
            dispatch.stop()
        self.ownership.stop()  # releases each partition after the source's on_lost (final checkpoint)
        self.regional_ownership.stop()  # the regional role's last checkpoint, then its lease
        self.source.stop()
        if self._ticker is not None:
            self._ticker.join(10)
        self.http.stop()
        self.outbox.close()
        self.checkpoints.close()
        self.regional_checkpoints.close()
        for shared in self.sinks:
            shared.sink.close()
        for sender in self.senders.values():
            sender.close()
        self.deadletters.close()
        log.info("cluster_worker_stopped", worker=self.worker_id)

    def run_forever(self) -> int:
        def on_signal(signum: int, _frame: Any) -> None:
            log.info("signal_received", signal=signal.Signals(signum).name)
            self._stop_requested.set()

        self._stop_requested = threading.Event()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        while not self._stop_requested.wait(5.0):
            self.check_sinks()
        self.stop()
        return 0

    def _dead_letter_refused(self, topic: str, payload: bytes, detail: str) -> None:
        self.deadletters.add_many(
            [DeadLetter(time.time_ns(), topic, payload, RejectReason.STREAM_REJECTED, detail)]
        )

    def _station_of_mn(self, mn: str) -> str | None:
        """The station of an MN, if the subscriptions route HJ 212 by station id (the intake then moves
        `hj212/<MN>` under the id: `stations.intake_subjects`); the first matching one decides."""
        station = self.registry.by_mn(mn)
        if station is None:
            return None
        topic = f"ecowatch/v1/hj212/{station.id}/packet"
        for subscription in self.settings.mqtt.subscriptions:
            tags = subscription.template().match(topic)
            if tags is not None:
                routed = subscription.format == "hj212" and tags.get("station_id") == station.id
                return station.id if routed else None
        return None

    def _regional_acquired(self, _partition: int, epoch: int) -> None:
        self.regional.opened(REGIONAL, epoch)

    def _regional_lost(self, _partition: int) -> None:
        self.regional.closed(REGIONAL)

    # The source is made after the ownership (its pipeline checks the leases): late-bound.
    def _on_acquired(self, partition: int, epoch: int) -> None:
        self.source.on_acquired(partition, epoch)

    def _on_lost(self, partition: int) -> None:
        self.source.on_lost(partition)

    # -- the time-driven side ---------------------------------------------------------------------

    def _tick_loop(self) -> None:
        """Metrics every second; the partitions' engines every tick_interval; housekeeping hourly."""
        interval = self.settings.alerts.scheduler.tick_interval.total_seconds()
        next_tick = next_housekeeping = time.monotonic()
        while not self._stop.wait(METRICS_EVERY_S):
            self.metrics.update(self.ownership.owned(), self.source.partition_stats())
            self.intake_metrics.update(self.intake.stats())
            now_s = time.monotonic()
            if now_s < next_tick:
                continue
            next_tick = now_s + interval
            now = datetime.now(UTC)
            self.pipeline.tick(now)
            self.regional.tick(now)
            if now_s >= next_housekeeping:
                next_housekeeping = now_s + HOUSEKEEP_EVERY_S
                for service in self.pipeline.services():
                    _housekeep(service, now)

    # -- state -------------------------------------------------------------------------------------

    def check_sinks(self) -> None:
        for shared in self.sinks:
            try:
                shared.sink.check()
            except SinkError as exc:
                self._sink_problems[shared.name] = f"{exc.reason}: {exc.detail}"
            else:
                self._sink_problems[shared.name] = None

    def readiness(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        if not self.ownership.connected:
            problems["cluster"] = "not connected to the NATS cluster"
        for name, problem in self._sink_problems.items():
            if problem:
                problems[f"sink.{name}"] = f"unreachable: {problem}"
        return problems

    def stats(self) -> dict[str, Any]:
        parts = self.source.partition_stats()
        return {
            "worker": self.worker_id,
            "owned": {str(p): epoch for p, epoch in self.ownership.owned().items()},
            "live_workers": sorted(self.ownership.live_workers()),
            "partitions": {
                str(p): {**parts.get(p, {}), **counts} for p, counts in self.pipeline.stats().items()
            },
            "regional": self._regional_stats(),
            "source": self.source.stats(),
            "intake": self.intake.stats(),
            "checkpoints": self.checkpoints.stats(),
            "outbox": self.outbox.stats(),
            "dispatch": {d.receiver: {**d.stats(), "dispatching": d.dispatching()} for d in self.dispatches},
            "senders": {name: sender.stats() for name, sender in self.senders.items()},
            "deadletters": self.deadletters.counts_by_reason(),
        }

    def _regional_stats(self) -> dict[str, Any]:
        services = self.regional.services()
        return {
            "holding": bool(self.regional_ownership.owned()),
            "assessed_days": _assessed_days(services[0]) if services else None,
            "assessment_runs": services[0].scheduler.runs["daily_assessment"] if services else None,
            **self.regional.stats().get(REGIONAL, {}),
        }

    def _readyz(self, _request: Request) -> tuple[int, Any]:
        problems = self.readiness()
        if problems:
            return 503, {"ready": False, "worker": self.worker_id, "problems": problems}
        return 200, {"ready": True, "worker": self.worker_id}

    def _cluster_api(self, _request: Request) -> tuple[int, Any]:
        return 200, cluster_status(self.cluster.servers, bucket_prefix=self.cluster.bucket_prefix)


def _assessed_days(service: AlertService) -> int:
    """How many days the regional role's assessment has stored: a new one is checkpointed."""
    with service.engine.lock:
        return len(service.engine.store.assessed_days())


def _start(component: str, start: Callable[[], object]) -> None:
    """Start a component, again while the cluster answers as it does right after its streams were
    made or a node restarted (no leader elected yet), for up to START_RETRY_S."""
    deadline = time.monotonic() + START_RETRY_S
    delay = 0.2
    while True:
        try:
            start()
            return
        except (TimeoutError, *TRANSIENT) as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("cluster_start_retry", component=component, error=repr(exc))
            time.sleep(delay)
            delay = min(2.0, delay * 2)


def _housekeep(service: AlertService, now: datetime) -> None:
    try:
        service.housekeep(now)
    except Exception as exc:  # retried in an hour; the partition goes on
        log.warning("partition_housekeep_failed", error=repr(exc))
