"""Cluster mode: stations in partitions, each partition owned by one worker at a time.

- `partitions`: station id → partition, sha256 mod N (stable across processes and machines).
- `leases`: the lease value and the balancing plan (pure).
- `ownership`: `Ownership`, one worker's leases in JetStream KV (asyncio on a thread of its own).
- `status`: `cluster_status(servers)` for `ecowatch cluster status`.
- `checkpoints`: `CheckpointStore`, partition state images fenced by epoch (the argument is there).
- `stations`: the stations stream, partitioned by the server's subject transform.
- `intake`: `MqttIntake`, the stations' messages from the MQTT listener's store into the stations
  stream, acknowledged to the listener only after they are stored there (one worker, a lease).
- `source`: `PartitionSource`, each owned partition's messages to a `PartitionHandler`, acked after.
- `metrics`: per-partition Prometheus metrics (owner, epoch, lag, redeliveries).
- `outbox`: `OutboxStream` (notifications deduplicated by idempotency key) and `ReceiverDispatch`
  (one dispatcher per receiver at a time, on a lease of its own); the exactly-once argument is there.

The lease protocol. Bucket `<prefix>-leases` holds one key per partition; its value names the
owner ("" = released) and the partition's epoch. Every write is a compare-and-set on the key's
revision (`create` = expect none, `update(last=r)`), so of two workers that read revision r only
one can write over it. A worker acquires a released lease, or one whose revision it has seen
unchanged for `lease_ttl`, by writing owner = itself, epoch = previous epoch + 1; it renews with
the same epoch every `renew_interval`; it releases by writing owner "" (same epoch). Live
workers rewrite their key in `<prefix>-workers`, a bucket whose max age (`lease_ttl`) drops
the silent ones; each worker aims for ceil(partitions / live workers), gives up its highest
partitions above that and takes released or expired ones below it.

Guarantees:
- One owner per lease at any instant, in the order of the KV's writes (a JetStream stream with
  one leader: its writes are linearizable): each change of owner is a CAS over the revision the
  new owner read, and epochs strictly increase per partition; the epoch is the fencing token.
- One holder in real time: the owner trusts its lease until `sent + lease_ttl - clock_margin`
  (`sent`: when it sent the write the KV stored, on CLOCK_BOOTTIME); a contender first sees that
  revision after it was stored, so after `sent`, and waits `lease_ttl` on its own clock. Assumed:
  clock rates differ by less than `clock_margin / lease_ttl` (10 %); no clock need agree on time.
- A paused owner (SIGSTOP, a GC pause, a suspended VM) wakes past its deadline: `holds()` is then
  false and its next renewal fails its CAS (`on_lost`). The pipeline must call
  `ownership.holds(partition, epoch)` right before every act (sink write, checkpoint, ack), and
  stamp durable writes with the epoch: a pause between the check and the act is not excluded by
  any lease, so the store must refuse a write whose epoch is below one it has seen (a checkpoint
  written with CAS on its revision plus the epoch in its value; outbox ids that carry it).
- Failover: a dead worker's partitions are taken within lease_ttl + 2 × renew_interval of its
  last renewal (and its workers key expires after lease_ttl, so the targets rise); a new worker
  gets its share within a few rounds, each moved partition released only after its old owner's
  `on_lost` returned.
- Liveness needs a KV quorum; without one nothing moves and owners lose their leases at their
  deadlines (safe, not available). Nothing here loses data: unacknowledged messages stay in the
  stream for the next owner.
"""

from ingest.cluster.checkpoints import Checkpoint, CheckpointStore
from ingest.cluster.config import ClusterConfig
from ingest.cluster.outbox import OutboxStream, Published, ReceiverDispatch
from ingest.cluster.ownership import Ownership
from ingest.cluster.partitions import partition_of, partition_of_subject, station_of_subject
from ingest.cluster.status import cluster_status

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "ClusterConfig",
    "OutboxStream",
    "Ownership",
    "Published",
    "ReceiverDispatch",
    "cluster_status",
    "partition_of",
    "partition_of_subject",
    "station_of_subject",
]
