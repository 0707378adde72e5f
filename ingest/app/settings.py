"""The root configuration: every component's section, from one YAML file plus `ECOWATCH_*` overrides.

Precedence: environment variables over the file over defaults. Nested keys use `__`:
`ECOWATCH_MQTT__HOST=broker`, `ECOWATCH_HTTP__PORT=9000`, `ECOWATCH_SINKS='[{"type": "sqlite",
"name": "local"}]'`. Unknown keys are errors. With no sinks configured, the embedded SQLite
store is used.

Example:
    data_dir: /var/lib/ecowatch
    registry: /etc/ecowatch/stations.yaml
    log: {level: info, format: json}
    http: {host: 0.0.0.0, port: 8080}
    mqtt: {host: 127.0.0.1, port: 1883, client_id: ecowatch-1}
    validation: {unknown_stations: reject, max_future_skew: PT5M}
    wal: {quota_bytes: 2147483648, fsync_interval: PT0.005S, fsync_max_records: 1000}
    deadletter: {max_rows_per_message: 100, max_bytes: 268435456, max_age: P30D}
    sinks:
      - {type: influxdb, name: influx, url: "http://127.0.0.1:8086", org: eco, bucket: water,
         token: "${INFLUX_TOKEN}"}
    shutdown_grace: PT10S

Cluster mode keeps the raw and the readings log as replicated streams on a NATS JetStream cluster
(`<stream>-raw`, `<stream>-readings`, each with its offsets in `<stream>-raw-offsets`, ...) instead
of under data_dir; dead letters and the alert database stay in data_dir. One daemon writes a pair
of streams: give each daemon a stream name of its own. `wal.fsync_interval` and `fsync_max_records`
still pace the group commit; `jetstream.quota_bytes` bounds each stream, and every node's
`max_file_store` must hold both streams' quotas, or no node can take them and start-up fails after
`jetstream.sync_timeout` (the server says "no suitable peers for placement").

Example (cluster mode):
    wal:
      backend: jetstream
      jetstream:
        servers: ["${NATS_URL}", "nats://nats-2:4222", "nats://nats-3:4222"]
        stream: ecowatch-1
        replicas: 3
        quota_bytes: 2147483648
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alerts.config import AlertsConfig
from alerts.notify_config import NotifyConfig
from config import DATA_DIR
from config.loader import ConfigError, describe, read_yaml
from config.types import StrictModel
from ingest.app.assessment_source import AssessmentConfig
from ingest.app.dashboard.config import DashboardConfig
from ingest.app.http_config import HTTPConfig
from ingest.cluster.config import ClusterConfig
from ingest.deadletter import DeadLetterConfig
from ingest.sinks import SinkConfig
from ingest.sinks.sqlite import SQLiteSinkConfig
from ingest.sources.hj212_gateway.config import HJ212GatewayConfig
from ingest.sources.mqtt import MQTTConfig
from ingest.validate import ValidationConfig
from ingest.wal.jetstream.config import JetStreamLogConfig

DEMO_REGISTRY = DATA_DIR / "stations" / "chongqing-demo.yaml"


class LogConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: JSON lines unless stderr is a terminal."
    )


# What the daemon appends to the configured stream name for its two logs.
JETSTREAM_SUFFIXES: Final = ("-raw", "-readings")
_LONGEST_STREAM: Final = 48 - max(len(suffix) for suffix in JETSTREAM_SUFFIXES)


class WalConfig(StrictModel):
    """The durable logs (raw messages, readings): local write-ahead logs, or JetStream streams."""

    backend: Literal["wal", "jetstream"] = Field(
        "wal",
        description="wal: write-ahead logs under data_dir/wal (single node, the default). jetstream: "
        "the streams `<jetstream.stream>-raw` and `<jetstream.stream>-readings` on a NATS cluster "
        "(cluster mode), each written by this daemon alone.",
    )
    jetstream: JetStreamLogConfig | None = Field(
        None,
        description="Servers, stream name prefix, replicas and per-stream quota of the JetStream "
        "backend; required by `backend: jetstream`.",
    )
    segment_bytes: int = Field(
        64 * 2**20, ge=2**16, description="Size at which a log segment is closed (backend wal)."
    )
    quota_bytes: int = Field(
        2 * 2**30,
        ge=2**20,
        description="Disk quota per log (backend wal; jetstream: `jetstream.quota_bytes`); when full "
        "the daemon stops acknowledging MQTT.",
    )
    fsync_interval: timedelta = Field(
        timedelta(milliseconds=5),
        description="Group commit (either backend): sync the raw log at most this often...",
    )
    fsync_max_records: int = Field(1000, ge=1, description="...or as soon as this many records wait.")

    @model_validator(mode="after")
    def _backend_configured(self) -> WalConfig:
        jetstream = self.jetstream
        if self.backend == "jetstream" and jetstream is None:
            raise ValueError("backend jetstream needs wal.jetstream with `servers` and `stream`")
        if jetstream is not None:
            if jetstream.subject is not None:
                raise ValueError(
                    "wal.jetstream.subject cannot be set: each of the daemon's streams is published "
                    "on its own subject, `ecowatch.log.<stream>-raw` and `ecowatch.log.<stream>-readings`"
                )
            if len(jetstream.stream) > _LONGEST_STREAM:
                raise ValueError(
                    f"wal.jetstream.stream is at most {_LONGEST_STREAM} characters, so that "
                    f"`{jetstream.stream}-readings` is a valid stream name"
                )
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ECOWATCH_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        # A validation error must not echo the input: it may be a password.
        hide_input_in_errors=True,
    )

    data_dir: Path = Field(Path("var"), description="Write-ahead logs, dead letters, embedded store.")
    data_group_readable: bool = Field(
        False,
        description="Create data files 0640 and folders 0750 (readable by the daemon user's group, for a "
        "backup agent) instead of 0600 / 0700. They hold raw packets with station passwords.",
    )
    registry: Path = Field(DEMO_REGISTRY, description="Station registry file.")
    log: LogConfig = LogConfig()
    http: HTTPConfig = HTTPConfig()
    mqtt: MQTTConfig = MQTTConfig()
    validation: ValidationConfig = ValidationConfig()
    wal: WalConfig = Field(
        WalConfig(),
        description="The durable logs between the source, the processor and the sinks: local "
        "write-ahead logs (default) or JetStream streams (cluster mode), and the group commit.",
    )
    deadletter: DeadLetterConfig = Field(
        DeadLetterConfig(),
        description="Bounds of the dead-letter store: rows per rejected message, quota, retention.",
    )
    sinks: tuple[SinkConfig, ...] = ()
    shutdown_grace: timedelta = Field(timedelta(seconds=10), description="SIGTERM: time to flush and commit.")
    alerts: AlertsConfig = Field(AlertsConfig(), description="GB 3838 alert rules and their lifecycle.")
    notify: NotifyConfig = Field(
        NotifyConfig(), description="Alert receivers, routes, retries and rate limits."
    )
    dashboard: DashboardConfig = Field(DashboardConfig(), description="The operator dashboard served at /.")
    assessment: AssessmentConfig = Field(
        AssessmentConfig(),
        description="The 2011 assessment method: its rules, and the store periods are read from.",
    )
    cluster: ClusterConfig | None = Field(
        None,
        description="Cluster mode: partitions of the stations leased to one worker at a time through "
        "JetStream KV (ingest.cluster); `ecowatch cluster status` reports them. Absent: one process.",
    )
    hj212_gateway: HJ212GatewayConfig | None = Field(
        None,
        description="When given, `ecowatch run` also accepts HJ 212 data loggers over TCP and logs their "
        "packets directly (answering 9014 once durable). `ecowatch hj212-gateway` reads the same section "
        "to run the gateway as its own process, publishing to the broker instead.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must win over it.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _checks(self) -> Settings:
        names = [sink.name for sink in self.sinks]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"sink names must be unique: {sorted(duplicates)}")
        if self.dashboard.enabled and self.dashboard.max_streams >= self.http.max_connections:
            raise ValueError(
                "http.max_connections must exceed dashboard.max_streams (each open dashboard holds one)"
            )
        if self.assessment.sink is not None and self.assessment.sink not in {
            s.name for s in self.effective_sinks()
        }:
            raise ValueError(f"assessment.sink {self.assessment.sink!r} names no configured sink")
        sink = self.dashboard.sink
        if sink is not None and sink not in {s.name for s in self.effective_sinks()}:
            raise ValueError(f"dashboard.sink {sink!r} names no configured sink")
        return self

    def effective_sinks(self) -> tuple[SinkConfig, ...]:
        if self.sinks:
            return self.sinks
        return (SQLiteSinkConfig(name="sqlite", path=self.data_dir / "readings.db"),)


def load_settings(path: Path | None, **overrides: Any) -> Settings:
    """Settings from `path` (if any), the environment and `overrides` (which win over the file)."""
    data = read_yaml(path) if path is not None else {}
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        source = f"{path}: " if path is not None else ""
        raise ConfigError(f"invalid configuration\n{describe(exc, source)}") from None
