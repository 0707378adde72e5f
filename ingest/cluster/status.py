"""`cluster_status`: the partitions, their owners, epochs and lag, and the live workers.

For `ecowatch cluster status` and the operator API. It reads what the workers wrote and decides
nothing: an owner listed here may have stopped renewing less than `lease_ttl` ago (its
`renewed_seconds_ago`, from the writer's wall clock, tells); a released lease shows owner None.
Lag is read from the owner's consumer of the stations stream (`part-<p>-e<epoch>`): `lag` the
messages not yet delivered to it, `ack_pending` delivered and not yet acknowledged,
`redelivered` delivered more than once; all None when that consumer does not exist (yet).
`intake`: who moves the stations' messages from the MQTT listener into the stations stream
(`ingest.cluster.intake`), and its backlog: `lag` messages the listener stored that it has not
fetched, `ack_pending` fetched and not yet stored and acknowledged.

An answer (abridged):
    {"partitions": 12, "live_workers": ["w1", "w2"],
     "owners": {"w1": [0, 2, 5], "w2": [1, 3, 4]},
     "lag": 12,
     "intake": {"owner": "w2", "epoch": 4, "lag": 0, "ack_pending": 20},
     "leases": [{"partition": 0, "owner": "w1", "epoch": 3, "revision": 812, "renewed_seconds_ago": 0.4,
                 "lag": 12, "ack_pending": 0, "redelivered": 0}]}
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext

from ingest.cluster.buckets import connect, leases_bucket, live_keys, workers_bucket
from ingest.cluster.intake import intake_bucket_prefix, intake_consumers
from ingest.cluster.leases import PARTITIONS_KEY, Lease, lease_key
from ingest.cluster.source import consumer_name
from ingest.cluster.stations import DEFAULT_STREAM


def cluster_status(
    servers: Sequence[str],
    *,
    bucket_prefix: str = "ecowatch",
    stream: str = DEFAULT_STREAM,
    timeout: float = 2.0,
) -> dict[str, Any]:
    """The cluster's ownership as plain data (JSON-ready); KeyError-free on an empty cluster."""
    return asyncio.run(_status(servers, bucket_prefix, stream, timeout))


async def _lag(js: JetStreamContext, stream: str, partition: int, epoch: int) -> dict[str, int | None]:
    try:
        info = await js.consumer_info(stream, consumer_name(partition, epoch))
    except nats.js.errors.NotFoundError:
        return {"lag": None, "ack_pending": None, "redelivered": None}
    return {"lag": info.num_pending, "ack_pending": info.num_ack_pending, "redelivered": info.num_redelivered}


async def _intake(js: JetStreamContext, prefix: str) -> dict[str, Any]:
    owner: str | None = None
    epoch = 0
    try:
        leases = await js.key_value(leases_bucket(intake_bucket_prefix(prefix)))
        lease = Lease.decode((await leases.get(lease_key(0))).value or b"")
        owner, epoch = lease.owner or None, lease.epoch
    except (nats.js.errors.BucketNotFoundError, nats.js.errors.KeyNotFoundError):
        pass
    try:
        consumers = await intake_consumers(js)
    except nats.js.errors.NotFoundError:  # no listener's store yet
        consumers = []
    if not consumers:
        return {"owner": owner, "epoch": epoch, "lag": None, "ack_pending": None}
    info = consumers[-1][1]
    return {"owner": owner, "epoch": epoch, "lag": info.num_pending, "ack_pending": info.num_ack_pending}


async def _status(servers: Sequence[str], prefix: str, stream: str, timeout: float) -> dict[str, Any]:
    nc = await connect(servers, "ecowatch-cluster-status", timeout)
    try:
        js = nc.jetstream(timeout=timeout)
        try:
            leases = await js.key_value(leases_bucket(prefix))
        except nats.js.errors.BucketNotFoundError:
            return {"partitions": 0, "live_workers": [], "owners": {}, "lag": 0, "intake": None, "leases": []}
        partitions = int((await leases.get(PARTITIONS_KEY)).value or b"0")
        try:
            workers = await live_keys(js, workers_bucket(prefix))
        except nats.js.errors.NotFoundError:
            workers = []
        now = time.time()
        rows: list[dict[str, Any]] = []
        owners: dict[str, list[int]] = {}
        for partition in range(partitions):
            try:
                entry = await leases.get(lease_key(partition))
            except nats.js.errors.KeyNotFoundError:
                rows.append({"partition": partition, "owner": None, "epoch": 0, "revision": 0, "lag": None})
                continue
            lease = Lease.decode(entry.value or b"")
            owner = lease.owner or None
            if owner is not None:
                owners.setdefault(owner, []).append(partition)
            rows.append(
                {
                    "partition": partition,
                    "owner": owner,
                    "epoch": lease.epoch,
                    "revision": entry.revision,
                    "renewed_seconds_ago": round(max(0.0, now - lease.renewed_at), 3),
                    **(await _lag(js, stream, partition, lease.epoch) if lease.epoch else {"lag": None}),
                }
            )
        lag = sum(row["lag"] or 0 for row in rows)
        return {
            "partitions": partitions,
            "live_workers": sorted(workers),
            "owners": owners,
            "lag": lag,
            "intake": await _intake(js, prefix),
            "leases": rows,
        }
    finally:
        await nc.close()
