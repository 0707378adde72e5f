"""`Ownership`: this worker's share of the partitions, held through leases in JetStream KV.

Two loops run every `renew_interval` on the worker's own asyncio loop (`LoopThread`), apart, so
that slow reads never delay a renewal:
- renew: rewrite this worker's key in the workers bucket (its heartbeat) and renew each lease
  held with a compare-and-set on the revision it last wrote (`update(key, value, last=revision)`);
  a lease past its deadline or whose CAS fails (another owner) is lost;
- balance: list the live workers (the keys of the workers bucket), read every lease, and plan
  (`leases.plan`): over ceil(partitions / live workers) release the highest partitions held,
  under it take released leases (CAS on their revision) and expired ones (a revision this worker
  has seen unchanged for `lease_ttl`), writing the previous epoch + 1.

A lease held is trusted until `sent + lease_ttl - clock_margin` (`sent`: when the renewal or
acquisition that the KV stored was sent), on CLOCK_BOOTTIME (it counts a suspended machine,
as the contenders' clocks do). `holds(partition, epoch)` answers from that deadline alone,
without I/O: the pipeline calls it before each act.

Callbacks run one at a time, in order, on a thread of their own (never on the loop, so a slow
pipeline does not stop renewals): `on_acquired(partition, epoch)` once the lease is held,
`on_lost(partition)` once it is not (`holds` is already false; after a missed deadline
`on_lost` may come up to `renew_interval` late, `holds` never is). On a release (rebalancing or
`stop`) the lease is kept, renewed, until `on_lost` returns (at most `lease_ttl`), and only then
written free: the next owner cannot start before this one has finished its in-flight work.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js.kv import KeyValue

from ingest.cluster.buckets import TRANSIENT, connect, ensure_bucket, leases_bucket, live_keys, workers_bucket
from ingest.cluster.leases import PARTITIONS_KEY, Lease, Observed, lease_key, observe, plan
from ingest.wal.jetstream.bridge import LoopThread

log = structlog.get_logger(__name__)

T = TypeVar("T")
OnAcquired = Callable[[int, int], None]
OnLost = Callable[[int], None]
# A missed renewal is retried in the next round; a fraction of the ttl is kept for clock drift
# between the owner and its contenders (NTP keeps rates within 500 ppm; 10 % is generous).
_DEFAULT_MARGIN: Final = 0.1


def boottime() -> float:
    """Seconds on CLOCK_BOOTTIME (monotonic, and counting time the machine was suspended)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True, slots=True)
class _Held:
    epoch: int
    revision: int
    deadline: float
    # Set once a release began: `holds` is false, the lease is renewed until `on_lost` returned.
    releasing_since: float | None = None


class Ownership:
    """One worker's partitions: acquire, renew, balance and release leases in the KV buckets."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        partitions: int,
        worker_id: str | None = None,
        on_acquired: OnAcquired | None = None,
        on_lost: OnLost | None = None,
        lease_ttl: float = 5.0,
        renew_interval: float = 1.0,
        clock_margin: float | None = None,
        replicas: int = 1,
        bucket_prefix: str = "ecowatch",
        request_timeout: float = 1.0,
        clock: Callable[[], float] = boottime,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, not {partitions}")
        if not 0 < renew_interval * 2 <= lease_ttl:
            raise ValueError("renew_interval must be positive and at most half of lease_ttl")
        self.servers = list(servers)
        self.partitions = partitions
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self._on_acquired = on_acquired or (lambda _p, _e: None)
        self._on_lost = on_lost or (lambda _p: None)
        self.lease_ttl = lease_ttl
        self.renew_interval = renew_interval
        self._margin = lease_ttl * _DEFAULT_MARGIN if clock_margin is None else clock_margin
        self._replicas = replicas
        self._prefix = bucket_prefix
        self._timeout = request_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[int, _Held] = {}
        self._observed: dict[int, Observed] = {}
        self._live: frozenset[str] = frozenset({self.worker_id})
        self._draining: dict[int, asyncio.Future[None]] = {}
        self._callbacks = ThreadPoolExecutor(1, thread_name_prefix=f"ownership-{self.worker_id}")
        self._bridge: LoopThread | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- the pipeline's interface ------------------------------------------------------------

    def holds(self, partition: int, epoch: int, *, releasing: bool = False) -> bool:
        """True while this worker holds `partition` at `epoch` and its lease has not run out.

        Call it right before each act on the partition (a sink write, an ack, a checkpoint):
        false means stop; a paused process that wakes up past its deadline gets false. A
        partition being handed over (`on_lost` runs) is no longer held, except with `releasing`:
        its lease stays this worker's until `on_lost` returns, for the last acts of a handover
        (a final checkpoint).
        """
        with self._lock:
            held = self._held.get(partition)
        return (
            held is not None
            and held.epoch == epoch
            and (releasing or held.releasing_since is None)
            and self._clock() < held.deadline
        )

    def owned(self) -> dict[int, int]:
        """The partitions held right now, with their epochs (the fencing tokens)."""
        now = self._clock()
        with self._lock:
            return {
                p: h.epoch for p, h in self._held.items() if h.releasing_since is None and now < h.deadline
            }

    @property
    def connected(self) -> bool:
        """The connection to the cluster is up (for readiness; a reconnect makes it false)."""
        nc: Client | None = getattr(self, "_nc", None)
        return self._bridge is not None and nc is not None and nc.is_connected

    def live_workers(self) -> frozenset[str]:
        """The workers this one counted in its last round (itself included)."""
        return self._live

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, create or bind the buckets, check the partition count, start the rounds."""
        # A failed start leaves nothing running (the callbacks' pool starts threads on first use),
        # so the caller may try again.
        self._bridge = LoopThread.opened(f"ownership-{self.worker_id}", self._open())
        log.info("ownership_started", worker=self.worker_id, partitions=self.partitions)

    def stop(self, *, release: bool = True) -> None:
        """Stop. With `release`, hand every partition back at once (after `on_lost`) and leave the
        workers bucket; without, just stop renewing and disconnect, as a crash would (the leases
        then expire after `lease_ttl`). Idempotent."""
        bridge, self._bridge = self._bridge, None
        if bridge is None:
            return
        try:
            bridge.run(self._shutdown(release))
        finally:
            bridge.stop()
            self._callbacks.shutdown(wait=True)
        log.info("ownership_stopped", worker=self.worker_id, released=release)

    # -- private: the rounds -----------------------------------------------------------------

    async def _open(self) -> None:
        self._nc: Client = await connect(self.servers, f"ecowatch-worker-{self.worker_id}", self._timeout)
        try:
            js = self._nc.jetstream(timeout=self._timeout)
            self._js = js
            self._leases: KeyValue = await ensure_bucket(
                js, leases_bucket(self._prefix), replicas=self._replicas, ttl=None
            )
            self._workers: KeyValue = await ensure_bucket(
                js, workers_bucket(self._prefix), replicas=self._replicas, ttl=self.lease_ttl
            )
            await self._check_partition_count()
        except BaseException:
            await self._nc.close()
            raise
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every_interval(self._renew_all, "renew")),
            loop.create_task(self._every_interval(self._balance, "balance")),
        ]

    async def _check_partition_count(self) -> None:
        try:
            await self._leases.create(PARTITIONS_KEY, b"%d" % self.partitions)
        except nats.js.errors.KeyWrongLastSequenceError:
            stored = int((await self._leases.get(PARTITIONS_KEY)).value or b"0")
            if stored != self.partitions:
                raise ValueError(
                    f"the cluster was set up with {stored} partitions, this worker with {self.partitions}"
                ) from None

    async def _every_interval(self, step: Callable[[], Coroutine[Any, Any, None]], what: str) -> None:
        while True:
            began = self._clock()
            try:
                await step()
            except Exception as exc:  # one failed round must not end ownership; the next retries
                log.warning("ownership_round_failed", worker=self.worker_id, step=what, error=repr(exc))
            await asyncio.sleep(max(0.0, self.renew_interval - (self._clock() - began)))

    async def _renew_all(self) -> None:
        """The heartbeat and every renewal, concurrently: never delayed by reads or slow peers."""
        await asyncio.gather(self._heartbeat(), *(self._renew(p) for p in list(self._held)))

    async def _heartbeat(self) -> None:
        # The put is made here, inside the task: made as gather's argument, a round cancelled
        # before its tasks ran (a stop) left it never awaited.
        heartbeat = json.dumps({"at": time.time(), "owned": len(self._held)}).encode()
        await self._attempt(self._workers.put(self.worker_id, heartbeat), "heartbeat")

    async def _balance(self) -> None:
        """Read the live workers and every lease, then release or acquire toward the target."""
        await asyncio.gather(self._read_live(), *(self._read(p) for p in range(self.partitions)))
        with self._lock:
            keeping = frozenset(p for p, h in self._held.items() if h.releasing_since is None)
            busy = frozenset(self._held)
        decision = plan(
            worker=self.worker_id,
            partitions=self.partitions,
            live_workers=len(self._live),
            held=keeping,
            exclude=busy,
            observed=self._observed,
            now=self._clock(),
            lease_ttl=self.lease_ttl,
        )
        for partition in decision.release:
            self._begin_release(partition)
        await asyncio.gather(*(self._acquire(p) for p in decision.acquire))

    async def _read_live(self) -> None:
        try:
            reading = live_keys(self._js, workers_bucket(self._prefix))
            keys = await asyncio.wait_for(reading, 2 * self._timeout)
        except (TimeoutError, *TRANSIENT) as exc:
            log.debug("ownership_workers_unread", worker=self.worker_id, error=repr(exc))
            return
        self._live = frozenset(keys) | {self.worker_id}

    async def _read(self, partition: int) -> None:
        try:
            entry = await self._leases.get(lease_key(partition))
            lease, revision = Lease.decode(entry.value or b""), entry.revision or 0
        except nats.js.errors.KeyNotFoundError:
            lease, revision = Lease("", 0), 0
        except TRANSIENT as exc:
            log.debug("ownership_lease_unread", partition=partition, error=repr(exc))
            return
        # Taken after the answer: the revision was stored before this instant.
        self._observed[partition] = observe(self._observed.get(partition), lease, revision, self._clock())

    async def _renew(self, partition: int) -> None:
        held = self._held[partition]
        now = self._clock()
        if held.releasing_since is not None:
            drain = self._draining.get(partition)
            if (drain is not None and drain.done()) or now - held.releasing_since >= self.lease_ttl:
                await self._write_release(partition, held)
                return
        elif now >= held.deadline:
            self._lose(partition, "expired")
            return
        value = Lease(self.worker_id, held.epoch, time.time()).encode()
        try:
            revision = await self._leases.update(lease_key(partition), value, last=held.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            await self._after_conflict(partition, held)
            return
        except TRANSIENT as exc:
            log.debug("ownership_renew_failed", partition=partition, error=repr(exc))
            return
        self._update(partition, held.epoch, revision=revision, deadline=now + self.lease_ttl - self._margin)

    async def _after_conflict(self, partition: int, held: _Held) -> None:
        """A renewal found another revision: ours with a lost ack, or another owner's."""
        try:
            entry = await self._leases.get(lease_key(partition))
        except (*TRANSIENT, nats.js.errors.KeyNotFoundError):
            self._lose(partition, "conflict")
            return
        lease = Lease.decode(entry.value or b"")
        if lease.owner == self.worker_id and lease.epoch == held.epoch and entry.revision:
            # A previous renewal was stored but its ack lost: continue from it. The deadline stays
            # the one of the last confirmed renewal (sent earlier), which is the safe side.
            self._update(partition, held.epoch, revision=entry.revision)
        else:
            self._lose(partition, "taken")

    async def _acquire(self, partition: int) -> None:
        seen = self._observed[partition]
        epoch = seen.lease.epoch + 1
        value = Lease(self.worker_id, epoch, time.time()).encode()
        sent = self._clock()
        try:
            if seen.revision == 0:
                revision = await self._leases.create(lease_key(partition), value)
            else:
                revision = await self._leases.update(lease_key(partition), value, last=seen.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return  # another worker was first
        except TRANSIENT as exc:
            # Maybe stored with its ack lost: then nobody renews it and it expires; nothing was done.
            log.debug("ownership_acquire_failed", partition=partition, error=repr(exc))
            return
        self._set(partition, _Held(epoch, revision, sent + self.lease_ttl - self._margin))
        log.info("partition_acquired", worker=self.worker_id, partition=partition, epoch=epoch)
        self._call(self._on_acquired, partition, epoch)

    def _begin_release(self, partition: int) -> None:
        held = self._held[partition]
        self._set(partition, replace(held, releasing_since=self._clock()))
        log.info("partition_releasing", worker=self.worker_id, partition=partition, epoch=held.epoch)
        self._draining[partition] = self._call(self._on_lost, partition)

    async def _write_release(self, partition: int, held: _Held) -> None:
        value = Lease("", held.epoch, time.time()).encode()
        try:
            await self._leases.update(lease_key(partition), value, last=held.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            pass  # expired and taken meanwhile: released all the same
        except TRANSIENT as exc:
            if self._clock() < held.deadline:
                log.debug("ownership_release_failed", partition=partition, error=repr(exc))
                return  # next round again; past the deadline it expires by itself
        self._drop(partition)
        log.info("partition_released", worker=self.worker_id, partition=partition, epoch=held.epoch)

    def _lose(self, partition: int, why: str) -> None:
        held = self._drop(partition)
        if held is not None and held.releasing_since is None:
            log.warning(
                "partition_lost", worker=self.worker_id, partition=partition, epoch=held.epoch, why=why
            )
            self._call(self._on_lost, partition)

    def _set(self, partition: int, held: _Held) -> None:
        with self._lock:
            self._held[partition] = held

    def _update(self, partition: int, epoch: int, **changes: Any) -> None:
        """Change the lease held at `epoch` (a release may have begun meanwhile: keep that)."""
        with self._lock:
            current = self._held.get(partition)
            if current is not None and current.epoch == epoch:
                self._held[partition] = replace(current, **changes)

    def _drop(self, partition: int) -> _Held | None:
        self._draining.pop(partition, None)
        with self._lock:
            return self._held.pop(partition, None)

    def _call(self, callback: Callable[..., None], *args: int) -> asyncio.Future[None]:
        """Run a callback on the callbacks thread (in order); its exception is logged, not raised."""

        def run() -> None:
            try:
                callback(*args)
            except Exception:
                log.exception("ownership_callback_failed", worker=self.worker_id, args=args)

        return asyncio.get_running_loop().run_in_executor(self._callbacks, run)

    async def _attempt(self, call: Coroutine[Any, Any, T], what: str) -> T | None:
        try:
            return await call
        except TRANSIENT as exc:
            log.debug("ownership_request_failed", what=what, error=repr(exc))
            return None

    async def _shutdown(self, release: bool) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if release:
            for partition, held in list(self._held.items()):
                if held.releasing_since is None:
                    self._begin_release(partition)
            await asyncio.gather(*self._draining.values(), return_exceptions=True)
            for partition, held in list(self._held.items()):
                await self._write_release(partition, held)
            await self._attempt(self._workers.purge(self.worker_id), "leave")
        else:
            for partition in list(self._held):
                self._lose(partition, "stopped")
        await asyncio.gather(*self._draining.values(), return_exceptions=True)
        try:
            await self._nc.close()
        except nats.errors.Error as exc:
            log.debug("ownership_close_failed", error=repr(exc))
