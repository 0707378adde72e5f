"""`PartitionSource`: a worker takes in the stations of the partitions it owns, from the cluster.

The stream `ecowatch-stations` (`ingest.cluster.stations`) stores every station message under
`ecowatch.part.<p>.…`, `p` computed by the server from the station id. For each partition this
worker owns (`on_acquired(p, epoch)` from `ingest.cluster.Ownership`) a thread asks the
`PartitionHandler` to open the partition (it may answer the sequence its checkpoint covers),
reads a durable pull consumer filtered on that partition and, per fetched batch:

    fetch ≤ batch → handler.handle(p, epoch, messages) → True (durable)
      → holds(p, epoch)? → ack the batch (AckAll on its last message, confirmed by the server)

The handler is the worker's pipeline (`ingest.app.cluster_worker`: decode, validate, write the
sinks, evaluate alerts, publish notifications), or `RawLogHandler`, which appends the batch to a
raw log and syncs it. A batch the handler did not make durable is handed to it again (never the
next one: the ack is cumulative) until it does or the partition is lost.

- Durable before ack: a message is acknowledged only after `handle` returned True for the batch
  that carries it, and only while `holds(p, epoch)`; `on_lost(p)` (or `stop`) marks the partition
  inactive under the lock its acks are sent under, so once `on_lost` returned no ack of that
  partition is sent by this worker (it then waits for the thread to finish its batch).
- Fencing by consumer, one per epoch: the consumer of partition `p` at epoch `e` is named
  `part-<p>-e<e>`. A new owner reads the previous consumers' ack floors, creates its own starting
  right after the highest one (or after the handler's checkpoint, when that is earlier: the
  state is rebuilt by replaying from there), then deletes the older consumers. So the next owner resumes in
  stream order at the first unacknowledged message (no wait for `ack_wait`, no reordering of a
  station's messages), and a late ack from a paused old owner lands on a consumer that is no
  longer read (it cannot acknowledge the new owner's messages). A worker that finds a consumer
  of a higher epoch stops: it is stale.
- Nothing acknowledged unread: an ack is cumulative (AckAll), so a delivery lost on the way (to a
  subscription dropped after a fetch error, or during a reconnect) would be acknowledged by the
  next batch's ack. Each batch must continue the consumer sequence of the last one this reader
  saw; on a gap the reader deletes this epoch's consumer and creates it again after its ack floor.
- At least once: what was fetched but not acknowledged (a crash, a lost lease, a failed sync, a
  lost ack) is read again by the partition's next reader, so it may be in two workers' raw logs
  (the handover window: the batch in flight at the loss). Downstream is idempotent (sinks
  overwrite the same points, the alert engine skips readings it has seen); `received_ns` is the
  time the stream stored the message, the same in every copy.
- Order: a station is in one partition; one thread reads it in stream order and appends in that
  order, so a worker's raw log holds each station's messages in the order the stream stored them
  (a redelivery inside one owner's period, after `ack_wait` expired on a stalled sync, excepted).
- Every message becomes a record, malformed or not (the processor dead-letters); a payload too
  large for the raw log is cut to fit (and dead-lettered downstream as malformed), logged.

Usage (the composition root):
    source = PartitionSource(servers, RawLogHandler(raw_log), partitions=cfg.partitions)
    ownership = Ownership(servers, partitions=cfg.partitions,
                          on_acquired=source.on_acquired, on_lost=source.on_lost)
    source.start(ownership)     # connect and create/bind the stream
    ownership.start()
    ...
    ownership.stop(); source.stop()
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, Self, TypeVar

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from ingest.cluster.buckets import TRANSIENT, connect
from ingest.cluster.stations import DEFAULT_STREAM, ensure_stream, filters, topic_of_subject
from ingest.errors import WalFullError
from ingest.records import encode_message
from ingest.wal.jetstream.bridge import LoopThread
from ingest.wal.seam import Producer

log = structlog.get_logger(__name__)

T = TypeVar("T")
_CONSUMER: Final = re.compile(r"^part-(\d+)-e(\d+)$")
_RAW_HEADER_ROOM: Final = 16  # encode_message's header (received_ns, topic length)
_V1_ACK_TOKENS: Final = 9


class Holder(Protocol):
    """What the source needs of `Ownership`: is this worker still the owner at this epoch?"""

    def holds(self, partition: int, epoch: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class StationMessage:
    """One message of the stations stream as a partition's handler gets it."""

    sequence: int  # in the stations stream
    topic: bytes  # the MQTT topic it was published on (UTF-8, undecodable bytes replaced)
    payload: bytes
    received_ns: int  # when the stream stored it: the same on every redelivery
    redelivered: bool


class PartitionHandler(Protocol):
    """What the source hands each owned partition's messages to, and when."""

    def opened(self, partition: int, epoch: int) -> int | None:
        """This worker now owns `partition`: prepare, and answer the stream sequence its state
        already covers (a checkpoint: reading resumes right after it), or None (resume after the
        last acknowledged message)."""
        ...

    def handle(
        self, partition: int, epoch: int, batch: list[StationMessage], held: Callable[[], bool]
    ) -> bool:
        """Make the batch durable (in stream order); True: acknowledge it. False, or raising:
        not acknowledged, read again by the partition's next reader. `held()` is false once the
        partition was lost: stop waiting then."""
        ...

    def closed(self, partition: int) -> None:
        """The partition's reader stopped (lost, released or stopping): release its resources."""
        ...


class RawLogHandler:
    """The handler that appends every message to a raw log (`Producer`) and syncs it: the
    worker's pipeline then reads that log as the single-node daemon does."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self.cut = 0

    def opened(self, partition: int, epoch: int) -> int | None:  # noqa: ARG002
        return None

    def closed(self, partition: int) -> None:  # noqa: ARG002
        return None

    def handle(
        self,
        partition: int,  # noqa: ARG002
        epoch: int,  # noqa: ARG002
        batch: list[StationMessage],
        held: Callable[[], bool],
    ) -> bool:
        """Append the batch's records, holding (not dropping) while the raw log is full."""
        limit = self._producer.max_record_bytes
        for msg in batch:
            room = limit - _RAW_HEADER_ROOM - len(msg.topic)
            payload = msg.payload
            if len(payload) > room:
                log.warning("partition_payload_cut", topic=msg.topic.decode(), bytes=len(payload), kept=room)
                payload = payload[: max(0, room)]
                self.cut += 1
            record = encode_message(msg.topic, payload, msg.received_ns)
            while True:
                try:
                    self._producer.append(record)
                    break
                except WalFullError:
                    if not held():
                        return False  # unacknowledged: the next owner reads it again
                    time.sleep(0.05)
        self._producer.sync()
        return True


class StaleOwnerError(RuntimeError):
    """A consumer of a higher epoch exists: another worker owns the partition now."""


def consumer_name(partition: int, epoch: int) -> str:
    return f"part-{partition}-e{epoch}"


def received_ns(msg: Msg) -> int:
    """When the stream stored `msg` (ns since the epoch, from its ack subject): the same on redelivery."""
    tokens = (msg.reply or "").split(".")
    index = 7 if len(tokens) == _V1_ACK_TOKENS else Msg.Ack.Timestamp
    try:
        return int(tokens[index])
    except (IndexError, ValueError):
        return time.time_ns()


@dataclass(slots=True)
class _Partition:
    partition: int
    epoch: int
    stop: threading.Event = field(default_factory=threading.Event)
    # Acks are sent under it; `on_lost` clears `active` under it: no ack after `on_lost`.
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: bool = True
    thread: threading.Thread | None = None
    resume_after: int | None = None  # the handler's checkpoint, if any
    lag: int = 0  # messages left in the consumer after the last fetched one
    # The consumer sequence of the last delivery this reader saw: a batch must continue it, else
    # deliveries were lost on the way (a dropped subscription, a reconnect) and an AckAll would
    # acknowledge them unread.
    delivered: int = 0
    rewind: bool = False  # recreate this epoch's consumer from its ack floor before reading on
    rewind_from: int | None = None  # that ack floor, once the consumer was deleted
    subscription: Any = None  # the pull subscription bound to this epoch's consumer
    fetched: int = 0
    acked: int = 0
    redelivered: int = 0


class PartitionSource:
    """Reads the owned partitions of the stations stream into the worker's raw log."""

    def __init__(
        self,
        servers: Sequence[str],
        handler: PartitionHandler,
        *,
        partitions: int,
        partition_by: str = "station",
        stream: str = DEFAULT_STREAM,
        replicas: int = 1,
        max_bytes: int = 2 * 2**30,
        batch: int = 256,
        fetch_wait: float = 0.5,
        ack_wait: float = 30.0,
        request_timeout: float = 2.0,
        name: str = "worker",
    ) -> None:
        if partitions < 1 or batch < 1:
            raise ValueError("partitions and batch must be at least 1")
        self.servers = list(servers)
        self._handler = handler
        self.partitions = partitions
        self._partition_by = partition_by
        self.stream = stream
        self._replicas = replicas
        self._max_bytes = max_bytes
        self._batch = batch
        self._fetch_wait = fetch_wait
        self._ack_wait = ack_wait
        self._timeout = request_timeout
        self._name = name
        self._holder: Holder | None = None
        self._bridge: LoopThread | None = None
        self._parts: dict[int, _Partition] = {}
        self._lock = threading.Lock()
        self._counts = {"fetched": 0, "handled": 0, "acked": 0, "ack_failed": 0, "redelivered": 0}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, holder: Holder) -> Self:
        """Connect and create (or bind to) the stations stream; partitions come via `on_acquired`."""
        self._holder = holder
        self._bridge = LoopThread.opened(f"partition-source-{self._name}", self._open())
        return self

    def stop(self) -> None:
        """Stop every partition (no ack after this returns) and disconnect. Idempotent."""
        with self._lock:
            parts = list(self._parts)
        for partition in parts:
            self.on_lost(partition)
        bridge, self._bridge = self._bridge, None
        if bridge is None:
            return
        try:
            bridge.run(self._attempt(self._nc.close()))
        finally:
            bridge.stop()

    def reading(self) -> dict[int, int]:
        """The partitions being read, with their epochs."""
        with self._lock:
            return {p: s.epoch for p, s in self._parts.items()}

    def partition_stats(self) -> dict[int, dict[str, int]]:
        """Per partition being read: epoch, lag (pending in its consumer after the last fetch),
        fetched, acked, redelivered (messages)."""
        with self._lock:
            return {
                p: {
                    "epoch": s.epoch,
                    "lag": s.lag,
                    "fetched": s.fetched,
                    "acked": s.acked,
                    "redelivered": s.redelivered,
                }
                for p, s in self._parts.items()
            }

    def stats(self) -> dict[str, int]:
        """fetched, handled, acked (messages), ack_failed (batches), redelivered."""
        with self._lock:
            return dict(self._counts)

    # -- Ownership's callbacks (its callbacks thread, one at a time) ----------------------------

    def on_acquired(self, partition: int, epoch: int) -> None:
        """Start reading `partition` as its owner at `epoch`."""
        self.on_lost(partition)  # a previous epoch's reader, if any, ends first
        state = _Partition(partition, epoch)
        state.thread = threading.Thread(
            target=self._run, args=(state,), name=f"partition-{partition}-e{epoch}", daemon=True
        )
        with self._lock:
            self._parts[partition] = state
        log.info("partition_source_started", worker=self._name, partition=partition, epoch=epoch)
        state.thread.start()

    def on_lost(self, partition: int) -> None:
        """Stop acknowledging `partition` now, then wait for its reader to finish its batch."""
        with self._lock:
            state = self._parts.pop(partition, None)
        if state is None:
            return
        state.stop.set()
        with state.lock:
            state.active = False
        if state.thread is not None and state.thread is not threading.current_thread():
            state.thread.join(self._ack_wait)
        log.info("partition_source_stopped", worker=self._name, partition=partition, epoch=state.epoch)

    # -- one partition's reader (a thread of its own) ------------------------------------------

    def _holds(self, state: _Partition) -> bool:
        holder = self._holder
        return holder is not None and not state.stop.is_set() and holder.holds(state.partition, state.epoch)

    def _run(self, state: _Partition) -> None:
        bridge = self._bridge
        if bridge is None:
            return
        try:
            self._read(state, bridge)
        except Exception:
            log.exception("partition_source_failed", partition=state.partition)
        finally:
            if state.subscription is not None and self._bridge is not None:
                with contextlib.suppress(RuntimeError):
                    bridge.run(self._attempt(state.subscription.unsubscribe()))
            self._handler.closed(state.partition)

    def _read(self, state: _Partition, bridge: LoopThread) -> None:
        """Open the partition with the handler, then read it batch by batch until stopped.

        Not held is not stopped: a renewal still in flight past the deadline makes `holds` false
        for a moment, and one that lands keeps this epoch (no `on_lost`, no new reader), so the
        reader waits; a lease really lost sets `stop` through `on_lost`. Every failure (a
        checkpoint that cannot be loaded during an election, a consumer whose leader moved) is
        tried again, never the end of the partition's reading.
        """
        opened = False
        while not state.stop.is_set():
            if not self._holds(state):
                state.stop.wait(0.1)
                continue
            try:
                if not opened:
                    state.resume_after = self._handler.opened(state.partition, state.epoch)
                    opened = True
                if state.subscription is None:
                    state.subscription = bridge.run(self._subscribe(state))
                if not self._step(state, bridge, state.subscription):
                    state.subscription = None  # the consumer is gone or its leader moved: bind again
                    state.stop.wait(0.2)
            except StaleOwnerError:
                log.warning("partition_source_stale", partition=state.partition, epoch=state.epoch)
                return
            except RuntimeError:
                if self._bridge is None:
                    return  # stopping: the loop is closing
                raise
            except Exception as exc:
                log.warning("partition_source_retry", partition=state.partition, error=repr(exc))
                state.subscription = None
                state.stop.wait(0.2)

    def _step(self, state: _Partition, bridge: LoopThread, sub: Any) -> bool:
        """One batch: fetch, handle, ack while held. False: the consumer must be bound again."""
        msgs = bridge.run(self._fetch(sub))
        if msgs is None:
            return False
        if not msgs or not self._holds(state):
            return True  # unacknowledged: read again by the next reader
        first: int | None
        last: int | None
        try:
            first, last = msgs[0].metadata.sequence.consumer, msgs[-1].metadata.sequence.consumer
        except nats.errors.Error:
            first = last = None
        if first is not None and first != state.delivered + 1:
            log.warning(
                "partition_delivery_gap", partition=state.partition, expected=state.delivered + 1, got=first
            )
            state.rewind = True
            return False  # bind again: the consumer is recreated from its ack floor
        if last is not None:
            state.delivered = last
        batch = [_station_message(msg) for msg in msgs]
        redelivered = sum(m.redelivered for m in batch)
        self._count("fetched", len(batch))
        self._count("redelivered", redelivered)
        with self._lock:
            state.fetched += len(batch)
            state.redelivered += redelivered
            with contextlib.suppress(nats.errors.Error):
                state.lag = msgs[-1].metadata.num_pending
        if not self._handle(state, batch):
            return True
        with state.lock:
            if state.active and self._holds(state):
                acked = bridge.run(self._ack(msgs[-1]))
                self._count("acked" if acked else "ack_failed", len(msgs) if acked else 1)
                if acked:
                    with self._lock:
                        state.acked += len(msgs)
        return True

    def _handle(self, state: _Partition, batch: list[StationMessage]) -> bool:
        """Hand the batch over until the handler made it durable, or the partition is lost.

        The same batch again, never the next one: an ack is cumulative (AckAll), so acknowledging
        a later batch would acknowledge this one too.
        """
        backoff = 0.2
        while True:
            try:
                if self._handler.handle(state.partition, state.epoch, batch, lambda: self._holds(state)):
                    self._count("handled", len(batch))
                    return True
            except Exception:
                log.exception("partition_handler_failed", partition=state.partition, epoch=state.epoch)
            if not self._holds(state):
                return False
            state.stop.wait(backoff)
            backoff = min(5.0, backoff * 2)

    # -- on the loop ---------------------------------------------------------------------------

    async def _open(self) -> None:
        self._nc: Client = await connect(self.servers, f"ecowatch-source-{self._name}", self._timeout)
        self._js: JetStreamContext = self._nc.jetstream(timeout=self._timeout)
        try:
            await ensure_stream(
                self._js,
                self.partitions,
                partition_by=self._partition_by,
                stream=self.stream,
                replicas=self._replicas,
                max_bytes=self._max_bytes,
            )
        except BaseException:
            await self._nc.close()
            raise

    async def _partition_consumers(self, partition: int) -> dict[int, api.ConsumerInfo]:
        """The consumers of `partition` by epoch."""
        found: dict[int, api.ConsumerInfo] = {}
        offset = 0
        while True:
            page = await self._js.consumers_info(self.stream, offset=offset)
            for info in page:
                match = _CONSUMER.fullmatch(info.name or "")
                if match and int(match[1]) == partition:
                    found[int(match[2])] = info
            if len(page) < 256:
                return found
            offset += len(page)

    async def _subscribe(self, state: _Partition) -> Any:
        """Bind to this epoch's consumer, created after the last one's ack floor (or the handler's
        checkpoint, if earlier: its state is replayed from there); delete older ones."""
        partition, epoch = state.partition, state.epoch
        existing = await self._partition_consumers(partition)
        if any(e > epoch for e in existing):
            raise StaleOwnerError(f"partition {partition}: a consumer of a higher epoch than {epoch} exists")
        name = consumer_name(partition, epoch)
        if state.rewind and epoch in existing:
            # Deliveries this reader never saw: start this epoch's consumer again after its ack floor.
            state.rewind_from = _ack_floor(existing.pop(epoch))
            await self._js.delete_consumer(self.stream, name)
        if epoch not in existing:
            floor = max((_ack_floor(info) for info in existing.values()), default=0)
            if state.resume_after is not None:
                floor = min(floor, state.resume_after)
            if state.rewind and state.rewind_from is not None:
                floor = state.rewind_from
            subjects = filters(partition)
            config = api.ConsumerConfig(
                durable_name=name,
                ack_policy=api.AckPolicy.ALL,
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if floor else api.DeliverPolicy.ALL,
                opt_start_seq=floor + 1 if floor else None,
                ack_wait=self._ack_wait,
                max_ack_pending=max(1000, 4 * self._batch),
                max_deliver=-1,
                filter_subject=subjects[0] if len(subjects) == 1 else None,
                filter_subjects=subjects if len(subjects) > 1 else None,
                num_replicas=self._replicas,
            )
            await self._js.add_consumer(self.stream, config)
            log.info("partition_consumer_created", partition=partition, epoch=epoch, start=floor + 1)
            state.delivered = 0
            state.rewind, state.rewind_from = False, None
        for old in existing:
            if old < epoch:
                await self._attempt(self._js.delete_consumer(self.stream, consumer_name(partition, old)))
        return await self._js.pull_subscribe_bind(name, self.stream)

    async def _fetch(self, sub: Any) -> list[Msg] | None:
        """A batch ([] when none came within fetch_wait), or None when the consumer must be bound again."""
        try:
            msgs: list[Msg] = await sub.fetch(self._batch, timeout=self._fetch_wait)
            return msgs
        except (nats.errors.TimeoutError, TimeoutError):
            return []
        except nats.errors.Error as exc:
            log.debug("partition_fetch_failed", error=repr(exc))
            await self._attempt(sub.unsubscribe())
            return None

    async def _ack(self, msg: Msg) -> bool:
        """AckAll up to `msg`, confirmed by the server; a failure is healed by the next batch's ack."""
        try:
            await msg.ack_sync(timeout=self._timeout)
            return True
        except nats.errors.MsgAlreadyAckdError:
            return True
        except (*TRANSIENT, nats.errors.Error) as exc:
            log.warning("partition_ack_failed", error=repr(exc))
            return False

    async def _attempt(self, call: Coroutine[Any, Any, T]) -> T | None:
        try:
            return await call
        except (*TRANSIENT, nats.errors.Error) as exc:
            log.debug("partition_source_request_failed", error=repr(exc))
            return None

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._counts[what] += n


def _station_message(msg: Msg) -> StationMessage:
    try:
        sequence, delivered = msg.metadata.sequence.stream, msg.metadata.num_delivered
    except nats.errors.Error:
        sequence, delivered = 0, 1
    topic = topic_of_subject(msg.subject).encode("utf-8", "replace")
    return StationMessage(sequence, topic, msg.data, received_ns(msg), delivered > 1)


def _ack_floor(info: api.ConsumerInfo) -> int:
    """The stream sequence below which a consumer acknowledged everything (its start - 1 at least)."""
    acked = info.ack_floor.stream_seq if info.ack_floor is not None and info.ack_floor.stream_seq else 0
    start = (info.config.opt_start_seq or 1) - 1 if info.config is not None else 0
    return max(acked, start)
