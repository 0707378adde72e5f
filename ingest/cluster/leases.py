"""The lease records and the balancing decision: values in, values out, no I/O and no clock reads.

A lease is the KV entry `partition.<n>` in the leases bucket. Its value is JSON:
`{"owner": "<worker id>" | "", "epoch": <int>, "renewed_at": <unix seconds>}`; owner "" means
released. `epoch` counts the owners the partition has had: each acquisition writes the previous
epoch + 1 with a compare-and-set on the revision it read, so epochs strictly increase per
partition. `renewed_at` is the writer's wall clock, for operators only: no decision reads it.

Expiry is judged by revisions, not by clocks: a contender that has seen the same revision of a
lease for `lease_ttl` on its own (monotonic) clock may take it over. The owner stops trusting its
lease at `sent + lease_ttl - clock_margin`, `sent` being when it sent the renewal that wrote the
revision; the contender's watch starts after that write was stored, so it can only take over
after the owner stopped (see `ingest.cluster` for the argument).

`plan` decides, for one worker, which partitions to let go and which to try to take:
a worker aims for ceil(partitions / live workers).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Final

# Keys of the leases bucket: one per partition, plus the partition count the bucket was made for.
PARTITIONS_KEY: Final = "partitions"
_LEASE_PREFIX: Final = "partition."


def lease_key(partition: int) -> str:
    return f"{_LEASE_PREFIX}{partition}"


def partition_of_key(key: str) -> int | None:
    """The partition a lease key names, or None for other keys."""
    if not key.startswith(_LEASE_PREFIX):
        return None
    tail = key[len(_LEASE_PREFIX) :]
    return int(tail) if tail.isdigit() else None


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease's value: who owns it ("" = nobody), its epoch, when it was last written (display)."""

    owner: str
    epoch: int
    renewed_at: float = 0.0

    def encode(self) -> bytes:
        return json.dumps({"owner": self.owner, "epoch": self.epoch, "renewed_at": self.renewed_at}).encode()

    @classmethod
    def decode(cls, data: bytes) -> Lease:
        """Parse a stored value; an unreadable one counts as a released lease of epoch 0."""
        try:
            doc = json.loads(data)
            return cls(str(doc["owner"]), int(doc["epoch"]), float(doc.get("renewed_at", 0.0)))
        except (ValueError, KeyError, TypeError):
            return cls("", 0)


@dataclass(frozen=True, slots=True)
class Observed:
    """A lease as this worker last read it: revision 0 = no key yet; `since` = when this revision
    was first seen (the worker's monotonic clock, taken after the read answered)."""

    lease: Lease
    revision: int
    since: float

    def free(self) -> bool:
        return self.revision == 0 or self.lease.owner == ""

    def expired(self, now: float, lease_ttl: float) -> bool:
        """Unchanged for `lease_ttl` on this worker's clock: its owner has stopped renewing."""
        return now - self.since >= lease_ttl


def observe(previous: Observed | None, lease: Lease, revision: int, now: float) -> Observed:
    """The new observation of a lease read at `now`: `since` restarts when the revision changed."""
    if previous is not None and previous.revision == revision:
        return previous
    return Observed(lease, revision, now)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one worker does this round: release these partitions, try to acquire those."""

    release: tuple[int, ...] = ()
    acquire: tuple[int, ...] = ()


def target(partitions: int, live_workers: int) -> int:
    """How many partitions each worker aims for: ceil(partitions / live workers)."""
    return math.ceil(partitions / max(1, live_workers))


def plan(
    *,
    worker: str,
    partitions: int,
    live_workers: int,
    held: frozenset[int],
    exclude: frozenset[int] = frozenset(),
    observed: dict[int, Observed],
    now: float,
    lease_ttl: float,
) -> Plan:
    """Balance toward `target`: over it, release the highest partitions held; under it, acquire
    free or expired leases, in an order of this worker's own so that contenders rarely collide.

    `held` excludes partitions being released; `exclude` (those) are never acquired. A partition
    not yet `observed` is not touched.
    """
    goal = target(partitions, live_workers)
    if len(held) > goal:
        return Plan(release=tuple(sorted(held)[goal:]))
    if len(held) == goal:
        return Plan()
    candidates = [
        p
        for p, seen in observed.items()
        if p not in held and p not in exclude and (seen.free() or seen.expired(now, lease_ttl))
    ]
    candidates.sort(key=lambda p: _preference(worker, p))
    return Plan(acquire=tuple(candidates[: goal - len(held)]))


def _preference(worker: str, partition: int) -> bytes:
    # Each worker walks the free partitions in its own (stable) order: fewer lost races.
    return hashlib.sha256(f"{worker}/{partition}".encode()).digest()
