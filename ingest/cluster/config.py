"""Configuration of cluster ownership: the servers, the partition count, lease timing, buckets."""

from __future__ import annotations

from datetime import timedelta
from typing import Self

from pydantic import Field, model_validator

from config.types import StrictModel
from ingest.cluster.partitions import PartitionBy


class ClusterConfig(StrictModel):
    """Partitions and their leases (cluster mode); see `ingest.cluster` for the guarantees."""

    servers: list[str] = Field(
        min_length=1, description="NATS client URLs (nats://host:4222); the client fails over between them."
    )
    partitions: int = Field(
        64,
        ge=1,
        le=4096,
        description="Partitions of the stations (sha256 of the station id mod this). Fixed for a "
        "deployment: changing it moves most stations; a worker with another value refuses to start.",
    )
    partition_by: PartitionBy = Field(
        "station",
        description="What a partition holds. `station`: stations hashed by id, spread evenly. "
        "`river_system`: every station on connected rivers of the registry's network in one "
        "partition (one alert engine follows an incident along all of them; stations off the "
        "network by id), at the cost of one partition per river system carrying its whole load. "
        "Fixed for a deployment like `partitions` (the stations stream records it).",
    )
    worker_id: str | None = Field(
        None,
        pattern=r"^[-_=.A-Za-z0-9]{1,64}$",
        description="This worker's name in leases and status; default host-pid-random (unique per run).",
    )
    lease_ttl: timedelta = Field(
        timedelta(seconds=5),
        description="A lease not renewed for this long is taken over: the bound on failover time.",
    )
    renew_interval: timedelta = Field(
        timedelta(seconds=1),
        description="How often leases are renewed and the partitions rebalanced; at most lease_ttl / 2.",
    )
    replicas: int = Field(
        3, ge=1, le=5, description="Replicas of the leases and workers buckets: 3 on a three-node cluster."
    )
    bucket_prefix: str = Field(
        "ecowatch",
        pattern=r"^[-_A-Za-z0-9]{1,32}$",
        description="Names of the cluster's buckets: KV `<prefix>-leases`, `<prefix>-workers`, "
        "`<prefix>-checkpoints`, object store `<prefix>-state`, and `<prefix>-outbox-<receiver>-*`.",
    )

    checkpoint_interval: timedelta = Field(
        timedelta(seconds=10),
        description="How often a partition's alert state is checkpointed to JetStream (and always "
        "when the partition is handed over): the most a new owner replays after a crash. Must stay "
        "well under the outbox's duplicate window (10 min), which absorbs the replayed notifications.",
    )
    batch: int = Field(
        500, ge=1, le=10_000, description="Messages a partition's reader fetches and handles at once."
    )
    stream_max_bytes: int = Field(
        2 * 2**30,
        ge=2**20,
        description="Size cap of the stations stream (`ecowatch-stations`); the oldest messages go "
        "first. Together with its 7-day age limit, what a partition can replay from; every NATS node "
        "stores it whole (R3 on three nodes), so it must fit max_file_store with the outbox stream, "
        "the MQTT sessions and the checkpoints. Applied at every worker start.",
    )

    @model_validator(mode="after")
    def _renewals_fit_the_lease(self) -> Self:
        if self.renew_interval * 2 > self.lease_ttl:
            raise ValueError("renew_interval must be at most half of lease_ttl (a renewal may be missed)")
        if not timedelta(seconds=1) <= self.checkpoint_interval <= timedelta(minutes=5):
            raise ValueError("checkpoint_interval must be between 1 s and 5 min (the outbox dedup window)")
        return self
