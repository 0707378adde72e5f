"""The daemon: wires the stages in flow order and runs their lifecycle.

    MQTT source -> group commit -> raw log -> processor (decode, validate) -> readings log
        -> one delivery loop per sink;   rejections -> dead-letter store

Start-up opens the logs (recovering torn tails), drops the offsets of sinks no longer configured,
and starts consumers before the source so nothing waits on an idle stage. The logs are the local
write-ahead logs under data_dir/wal, or with `wal.backend: jetstream` the JetStream streams
`<stream>-raw` and `<stream>-readings` (cluster mode); every stage uses them through the log seam
(`ingest.wal.seam`) only, so the pipeline is the same on both. SIGTERM stops the source
from reading, flushes and acknowledges what is logged, lets the processor and the sinks finish
within the grace period, and exits 0; what is left is in the logs and resumes on the next start.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple, cast

import structlog

from alerts.assessment_method.report_cli import StoreConfigError
from alerts.outbox import NotificationDispatcher
from alerts.service import AlertService
from config.files import make_private_dir, set_group_readable
from config.parameters import default_catalogue
from config.registry import Registry
from ingest import telemetry
from ingest.app.assessment_source import assessment_config, make_source
from ingest.app.dashboard import PUBLIC_PATHS, Dashboard
from ingest.app.http import HTTPService
from ingest.app.query import make_query
from ingest.app.settings import JETSTREAM_SUFFIXES, Settings
from ingest.deadletter import DeadLetterStore
from ingest.decoders import DECODERS, Decoder
from ingest.decoders.hj212 import HJ212Decoder
from ingest.delivery import SinkRunner
from ingest.errors import SinkError
from ingest.processor import MessageProcessor, Processor, Route
from ingest.records import encode_message
from ingest.routes import Request, int_param, str_param
from ingest.sinks import make_sink
from ingest.sinks.base import SinkConfigBase
from ingest.sources.hj212_gateway import HJ212Gateway
from ingest.sources.mqtt import AckToken, MQTTSource
from ingest.validate import Validator
from ingest.wal import Consumer, GroupCommitter, Log, WriteAheadLog
from ingest.wal.jetstream import FIRST_OFFSET, JetStreamLog

log = structlog.get_logger(__name__)

PROCESSOR_CONSUMER = "processor"
ALERTS_CONSUMER = "alerts"
# Records behind in the raw log or in a working sink that mean a burst is being taken in.
INGEST_BUSY_BACKLOG = 1000

# What the group committer hands back once durable: an MQTT ack, or a gateway's callback.
DurableToken = AckToken | Callable[[], None]


class LogHandoff:
    """The HJ 212 gateway's handoff inside the daemon: packets go straight into the raw log.

    `on_durable` runs after the group commit's fsync, so the gateway answers 9014 only for packets
    that survive a crash, exactly as MQTT messages are acknowledged.
    """

    def __init__(self, committer: GroupCommitter[DurableToken]) -> None:
        self._committer = committer

    def submit(self, topic: str, payload: bytes, on_durable: Callable[[], None]) -> None:
        telemetry.MESSAGES_RECEIVED.inc()
        self._committer.submit(encode_message(topic.encode(), payload, time.time_ns()), on_durable)

    def close(self) -> None:
        return None


def sink_consumer(name: str) -> str:
    return f"sink.{name}"


def _decoder(settings: Settings, fmt: str) -> Decoder:
    gateway = settings.hj212_gateway
    if fmt == "hj212" and gateway is not None:
        # What the gateway acknowledges with 9014 must decode here: same CRC variant and limits.
        return HJ212Decoder(
            crc=gateway.crc, timezone=gateway.timezone, max_segment_length=gateway.max_segment_length
        )
    return DECODERS[fmt]()


class DurableLogs(NamedTuple):
    """The raw and the readings log of the configured backend, and how to count their offsets."""

    raw: Log
    readings: Log
    backend: str
    first_offset: int  # of a log's first record: counts are offsets minus this
    jetstream: tuple[JetStreamLog, ...]  # the same logs when they are JetStream streams (health)


def open_logs(settings: Settings) -> DurableLogs:
    """Open the raw and the readings log: local write-ahead logs, or JetStream streams."""
    wal = settings.wal
    if wal.backend == "jetstream":
        if wal.jetstream is None:  # refused by WalConfig already
            raise ValueError("wal.backend jetstream needs wal.jetstream")
        config = wal.jetstream
        opened: list[JetStreamLog] = []
        try:
            for suffix in JETSTREAM_SUFFIXES:
                opened.append(JetStreamLog.from_config(config, stream=f"{config.stream}{suffix}"))
        except BaseException:
            for stream in opened:
                stream.close()
            raise
        raw, readings = opened
        return DurableLogs(raw, readings, "jetstream", FIRST_OFFSET, (raw, readings))
    directory = settings.data_dir / "wal"
    logs = [
        WriteAheadLog(directory / name, segment_bytes=wal.segment_bytes, quota_bytes=wal.quota_bytes)
        for name in ("raw", "readings")
    ]
    return DurableLogs(logs[0], logs[1], "wal", 0, ())


def build_processor_core(settings: Settings, registry: Registry) -> MessageProcessor:
    validator = Validator(settings.validation, registry, default_catalogue())
    routes = [
        Route(s.template(), s.format, _decoder(settings, s.format)) for s in settings.mqtt.subscriptions
    ]
    return MessageProcessor(routes, validator, settings.validation.max_payload_bytes)


class Daemon:
    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else Registry.load(settings.registry)
        _warn_unknown_incident_receivers(self.registry, settings)
        data_dir = settings.data_dir
        set_group_readable(settings.data_group_readable)
        make_private_dir(data_dir)
        wal = settings.wal
        self.logs = open_logs(settings)
        # The logs behind the seam: a WriteAheadLog or a JetStreamLog (the names are historical).
        self.raw_wal: Log = self.logs.raw
        self.readings_wal: Log = self.logs.readings
        self.deadletters = DeadLetterStore(data_dir / "deadletter.db", settings.deadletter)
        self.committer: GroupCommitter[DurableToken] = GroupCommitter(
            self.raw_wal,
            self._on_durable,
            interval=wal.fsync_interval.total_seconds(),
            max_records=wal.fsync_max_records,
        )
        # The source only submits AckTokens, a subset of what the committer carries.
        source_committer = cast("GroupCommitter[AckToken]", self.committer)
        self.source = MQTTSource(settings.mqtt, source_committer, before_disconnect=self._flush_acks)
        self.gateway: HJ212Gateway | None = None
        if settings.hj212_gateway is not None:
            self.gateway = HJ212Gateway(settings.hj212_gateway, LogHandoff(self.committer), self.registry)
        self.processor_reader: Consumer = self.raw_wal.reader(PROCESSOR_CONSUMER, "beginning")
        self.processor = Processor(
            build_processor_core(settings, self.registry),
            self.processor_reader,
            self.readings_wal,
            self.deadletters,
            workers=settings.validation.workers,
            log_level=settings.log.level,
            log_format=settings.log.format,
        )
        self.runners = self._make_runners()
        # The alert engine consumes the readings log like a sink, with its own durable offset, so a
        # replay after a crash re-evaluates nothing it has already seen (it skips known readings).
        # It yields to the ingest path during a burst (see ingest.delivery) and catches up after.
        # The assessment reads periods the alert database lacks from the readings store.
        assessment = assessment_config(settings)
        try:
            results = make_source(assessment, settings.effective_sinks())
        except StoreConfigError as exc:
            raise ValueError(str(exc)) from None
        self.alerts = AlertService(
            settings.alerts,
            self.registry,
            data_dir / "alerts.db",
            assessment_rules=assessment.rules,
            results=results,
            keep_days=assessment.keep_days,
        )
        self.alert_runner = SinkRunner(
            self.alerts,
            SinkConfigBase(name=ALERTS_CONSUMER, batch_size=2000, flush_interval=timedelta(milliseconds=200)),
            self.readings_wal.reader(ALERTS_CONSUMER, "beginning"),
            self.deadletters,
            yield_to=self.ingest_busy,
        )
        token = settings.http.token.get_secret_value() if settings.http.token else None
        self.http = HTTPService(
            settings.http.host,
            settings.http.port,
            {
                ("GET", "/healthz"): lambda _r: (200, {"status": "ok"}),
                ("GET", "/readyz"): self._readyz,
                ("GET", "/api/v1/stats"): lambda _r: (200, self.stats()),
                ("GET", "/api/v1/deadletters"): self._deadletters_api,
            },
            token=token,
            public_paths=PUBLIC_PATHS if settings.dashboard.enabled else frozenset(),
            config=settings.http,
        )
        self.dispatcher = NotificationDispatcher(settings.notify, data_dir / "alerts.db")
        self.http.add_routes(self.alerts.routes())
        self.http.add_routes(self.dispatcher.routes())
        self.dashboard: Dashboard | None = None
        if settings.dashboard.enabled:
            query = make_query(settings.effective_sinks(), settings.dashboard.sink)
            self.dashboard = Dashboard(settings.dashboard, self.registry, query, self.alerts.snapshot)
            self.http.add_routes(self.dashboard.routes())
        self._stopped = threading.Event()
        # Results of the last sink health checks (for /readyz): sink name -> problem or None.
        self._sink_checks: dict[str, str | None] = {}

    def _make_runners(self) -> list[SinkRunner]:
        configs = self.settings.effective_sinks()
        wanted = {sink_consumer(c.name) for c in configs} | {ALERTS_CONSUMER}
        for consumer in self.readings_wal.consumers():
            if consumer not in wanted:
                log.warning("sink_offset_dropped", consumer=consumer, reason="sink no longer configured")
                self.readings_wal.drop_consumer(consumer)
        return [
            SinkRunner(
                make_sink(c),
                c,
                self.readings_wal.reader(sink_consumer(c.name), c.start),
                self.deadletters,
            )
            for c in configs
        ]

    def _on_durable(self, tokens: list[DurableToken]) -> None:
        acks: list[AckToken] = []
        for token in tokens:
            if isinstance(token, tuple):
                acks.append(token)
            else:
                token()
        self.source.on_durable(acks)

    def _flush_acks(self) -> None:
        self.committer.stop(timeout=self.settings.shutdown_grace.total_seconds() / 3)

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        log.info(
            "daemon_starting",
            data_dir=str(self.settings.data_dir),
            stations=len(self.registry),
            sinks=[r.config.name for r in self.runners],
            wal=self.logs.backend,
            raw_log=str(self.raw_wal),
            readings_log=str(self.readings_wal),
            broker=f"{self.settings.mqtt.host}:{self.settings.mqtt.port}",
        )
        self.deadletters.start()  # its retention, every deadletter.housekeeping_interval
        for runner in self.runners:
            runner.start()
        self.alert_runner.start()
        self.alerts.start()
        self.dispatcher.start()
        self.processor.start()
        self.committer.start()
        self.source.start()
        if self.gateway is not None:
            self.gateway.start()
        self.check_sinks()
        self.http.start()
        log.info("daemon_started", http=f"http://{self.settings.http.host}:{self.http.port}")

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.shutdown_grace.total_seconds()
        deadline = time.monotonic() + grace
        log.info("daemon_stopping", grace_s=grace)
        if self.gateway is not None:
            self.gateway.stop(timeout=grace / 4)
        self.source.stop(timeout=grace / 3)  # stops reading, flushes the committer, acks, disconnects
        self.committer.stop(timeout=0)
        self._drain(deadline)
        self.processor.stop(timeout=max(0.1, deadline - time.monotonic()))
        for runner in [*self.runners, self.alert_runner]:
            runner.stop(timeout=max(0.1, deadline - time.monotonic()))
        self.alerts.stop()
        self.dispatcher.stop(timeout=max(0.1, deadline - time.monotonic()))
        if self.dashboard is not None:
            self.dashboard.close()
        self.http.stop()
        final = self.stats()["logs"]
        self.raw_wal.close()
        self.readings_wal.close()
        for runner in self.runners:
            runner.sink.close()
        self.alerts.close()
        self.deadletters.close()
        log.info("daemon_stopped", **final)

    def _drain(self, deadline: float) -> None:
        """Give the consumers until the deadline to catch up with what is logged."""
        while time.monotonic() < deadline:
            if all(lag == 0 for lag in self._lags().values()):
                return
            time.sleep(0.05)

    def run_forever(self) -> int:
        stop = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("signal_received", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        while not stop.wait(5.0):
            self._update_gauges()
            self.check_sinks()
        self.stop()
        return 0

    # --- state -------------------------------------------------------------------------------------
    def _lags(self) -> dict[str, int]:
        lags = {
            PROCESSOR_CONSUMER: self.processor_reader_lag(),
            ALERTS_CONSUMER: self.alert_runner.reader.lag(),
        }
        for runner in self.runners:
            lags[sink_consumer(runner.config.name)] = runner.reader.lag()
        return lags

    def check_sinks(self) -> None:
        """Probe every sink (fails fast on a closed port); /readyz reports the failures."""
        for runner in self.runners:
            try:
                runner.sink.check()
            except SinkError as exc:
                if self._sink_checks.get(runner.config.name) is None:
                    log.warning(
                        "sink_check_failed", sink=runner.config.name, reason=exc.reason, detail=exc.detail
                    )
                self._sink_checks[runner.config.name] = f"{exc.reason}: {exc.detail}"
            else:
                self._sink_checks[runner.config.name] = None

    def ingest_busy(self) -> bool:
        """A burst is being taken in: the processor or a working sink is well behind the logs.

        Never while the logs are filling up: then the alert engine, if behind, may be what pins
        the readings log's segments, and yielding would hold up the very ingest it yields to.
        """
        readings = self.readings_wal
        if self.processor.blocked_on_full_log or self.committer.full:
            return False
        if readings.usage_bytes() * 2 > readings.quota_bytes:
            return False
        if self.processor_reader_lag() > INGEST_BUSY_BACKLOG:
            return True
        return any(not r.failing and r.reader.lag() > INGEST_BUSY_BACKLOG for r in self.runners)

    def processor_reader_lag(self) -> int:
        return self.processor_reader.lag()

    def _count(self, offset: int) -> int:
        """Records below `offset` in a log (offsets are dense from the backend's first offset)."""
        return max(0, offset - self.logs.first_offset)

    def _update_gauges(self) -> None:
        telemetry.WAL_USAGE.labels("raw").set(self.raw_wal.usage_bytes())
        telemetry.WAL_USAGE.labels("readings").set(self.readings_wal.usage_bytes())
        telemetry.WAL_FULL.set(1 if self.committer.full else 0)
        telemetry.WAL_HELD.set(self.committer.held)
        for consumer, lag in self._lags().items():
            log_name = "raw" if consumer == PROCESSOR_CONSUMER else "readings"
            telemetry.WAL_PENDING.labels(log_name, consumer).set(lag)

    def stats(self) -> dict[str, Any]:
        """Durable counts that reconcile across restarts.

        raw log: logged = processed + pending; readings log: appended = committed + pending per sink.
        """
        raw_consumers = self.raw_wal.consumers()
        readings_consumers = self.readings_wal.consumers()
        count = self._count
        return {
            "wal": {
                "backend": self.logs.backend,
                "raw": str(self.raw_wal),
                "readings": str(self.readings_wal),
            },
            "logs": {
                "raw_logged": count(self.raw_wal.durable_offset),
                "raw_processed": count(raw_consumers.get(PROCESSOR_CONSUMER, 0)),
                "readings_logged": count(self.readings_wal.durable_offset),
            },
            "sinks": {
                r.config.name: {
                    "committed": count(readings_consumers.get(sink_consumer(r.config.name), 0)),
                    "pending": r.reader.lag(),
                    "down": r.down,
                }
                for r in self.runners
            },
            "alerts": {
                "committed": count(readings_consumers.get(ALERTS_CONSUMER, 0)),
                "pending": self.alert_runner.reader.lag(),
            },
            "deadletters": self.deadletters.counts_by_reason(),
            "deadletter_store": self.deadletters.status(),
            "counters": _counter_values(),
            "mqtt_connected": self.source.connected,
            "raw_log_full": self.committer.full,
            "held_messages": self.committer.held,
        }

    def readiness(self) -> dict[str, str]:
        """Why the daemon is not ready; empty when it is."""
        problems: dict[str, str] = {}
        if not self.source.connected:
            problems["mqtt"] = "not connected to the broker"
        if self.committer.full:
            problems["wal"] = "raw log at its quota: acknowledgements are held"
        if self.processor.blocked_on_full_log:
            problems["readings_wal"] = "readings log at its quota"
        for name, stream in zip(("wal", "readings_wal"), self.logs.jetstream, strict=False):
            if (problem := stream.health()) is not None:
                problems.setdefault(name, f"{stream}: {problem}")
        if self.committer.failed is not None:
            problems["wal"] = f"raw log {self.raw_wal} failed: {self.committer.failed}"
        try:
            self.alerts.check()
        except SinkError as exc:
            problems["alerts"] = f"{exc.reason}: {exc.detail}"
        for runner in self.runners:
            name = runner.config.name
            if runner.down:
                problems[f"sink.{name}"] = "failing past its retry budget"
            elif self._sink_checks.get(name):
                problems[f"sink.{name}"] = f"unreachable: {self._sink_checks[name]}"
        return problems

    def _readyz(self, _request: Request) -> tuple[int, Any]:
        problems = self.readiness()
        return (503, {"ready": False, "problems": problems}) if problems else (200, {"ready": True})

    def _deadletters_api(self, request: Request) -> tuple[int, Any]:
        limit = int_param(request.query, "limit", 100, 1, 1000)
        after = int_param(request.query, "after_id", 0, 0, 2**62)
        reason = str_param(request.query, "reason")
        letters = self.deadletters.list(reason=reason, limit=limit, after_id=after)
        return 200, {"deadletters": [d.to_json() for d in letters]}


def _counter_values() -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in (
        telemetry.MESSAGES_RECEIVED,
        telemetry.MESSAGES_LOGGED,
        telemetry.MESSAGES_PROCESSED,
        telemetry.READINGS_ACCEPTED,
        telemetry.READINGS_REJECTED,
        telemetry.SINK_WRITTEN,
        telemetry.SINK_DEAD_LETTERED,
    ):
        for family in metric.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    out[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return out


def _warn_unknown_incident_receivers(registry: Registry, settings: Settings) -> None:
    """The river network names receivers (river chiefs, duty rooms, intake operators) that incident
    threads are addressed to; those not configured in `notify.receivers` hear nothing."""
    network = registry.network
    if network is None:
        return
    missing = sorted(network.receiver_names() - {r.name for r in settings.notify.receivers})
    if missing:
        log.warning("incident_receivers_not_configured", receivers=missing, count=len(missing))
