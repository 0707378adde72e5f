"""Configuration of a JetStream log: where the servers are, the stream, its replicas and capacity."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from config.types import StrictModel


class JetStreamLogConfig(StrictModel):
    """One log as a JetStream stream (cluster mode); the local `wal` stays the default."""

    servers: list[str] = Field(
        min_length=1, description="NATS client URLs (nats://host:4222); the client fails over between them."
    )
    stream: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,48}$",
        description="Stream name; the consumers' offsets live in the KV bucket `<stream>-offsets`.",
    )
    subject: str | None = Field(
        None, description="Subject the records are published on; default `ecowatch.log.<stream>`."
    )
    replicas: int = Field(
        3,
        ge=1,
        le=5,
        description="Stream and offset-bucket replicas: 3 on a three-node cluster, 1 on one node.",
    )
    quota_bytes: int = Field(
        2 * 2**30,
        ge=2**16,
        description="Stream max_bytes (discard new); at it `append` raises WalFullError, as the WAL does.",
    )
    sync_timeout: timedelta = Field(
        timedelta(seconds=30),
        description="How long `sync` and `commit` retry through a leader election before they fail.",
    )
    request_timeout: timedelta = Field(
        timedelta(seconds=2), description="One JetStream API request or PubAck wait, before a retry."
    )
    purge_interval: timedelta = Field(
        timedelta(seconds=1),
        description="Purge what every consumer committed at most this often (at once when the log is full).",
    )
