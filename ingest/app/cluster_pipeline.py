"""The cluster worker's pipeline: one owned partition's batch, decoded to notified, before its ack.

`PartitionPipeline` is the `PartitionHandler` of `ingest.cluster.source`. Per owned partition
it keeps the partition's alert state (an `AlertService` on its own SQLite file under
`data_dir/cluster/p<n>/`) and, for each batch the partition's reader fetched, in stream order:

    decode + validate (the single-node processor core)  → dead letters to the worker's store
    → every sink writes the readings (idempotent: a point is its measurement, tags and time)
    → the partition's alert engine evaluates them (it skips readings it has seen)
    → its new notification events, routed per receiver, go to the outbox stream
      (dedup id `<event key>@<receiver>`; a replay publishes nothing twice)
    → every `checkpoint_interval`, the alert database image to JetStream (`CheckpointStore`)
    → True: the reader acknowledges the batch

State that survives its worker: `opened` downloads the partition's last checkpoint (or starts
empty) and answers the stream sequence it covers, so the reader resumes right after it and the
engine replays what came since. The sinks rewrite those points (the same values), the engine
re-derives the same transitions from the same state and inputs, and the outbox stream drops the
notifications already published. `closed` writes a last checkpoint when the partition is handed
over in order (its lease is still held until `on_lost` returns), so a planned move replays
nothing. The no-checkpoint case replays the partition from the start of the stream.

Each act first checks `held()` (the lease at this epoch); a write that a paused, deposed owner
makes anyway is harmless: sinks are idempotent, checkpoints are fenced by epoch, the outbox is
deduplicated, and the ack goes to a consumer no longer read.

Limits of the cluster mode (see deploy/cluster/README.md): the engine of a partition sees the
stations of that partition only, so a pollution incident followed along the river is tracked
per partition (stations of one river reach that hash apart are followed separately), and the
daily and period assessments and regional rules are not run by workers (run `ecowatch report`
against the readings store). Dead letters stay in the local store of the worker that rejected
the message, keyed by stream sequence, so a replay on another worker may list a letter twice.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from alerts.outbox import ClusterOutboxFeed
from alerts.service import AlertService
from ingest import telemetry
from ingest.cluster import Checkpoint, Published
from ingest.cluster.source import StationMessage
from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.errors import RejectReason, SinkError
from ingest.model import Reading
from ingest.processor import MessageProcessor, process_batch
from ingest.records import decode_readings, encode_message
from ingest.sinks import Sink

log = structlog.get_logger(__name__)


class Holder(Protocol):
    """`ingest.cluster.Ownership`, as the pipeline uses it."""

    def holds(self, partition: int, epoch: int, *, releasing: bool = False) -> bool: ...


class Checkpoints(Protocol):
    """`ingest.cluster.CheckpointStore`, as the pipeline uses it."""

    def load(self, partition: int) -> Checkpoint | None: ...

    def save(self, partition: int, epoch: int, sequence: int, data: bytes) -> bool: ...


class Outbox(Protocol):
    """`ingest.cluster.OutboxStream`, as the pipeline uses it."""

    def publish(self, key: str, payload: bytes, *, topic: str = "all") -> Published: ...


@dataclass(slots=True)
class _Owned:
    """One owned partition's state."""

    partition: int
    epoch: int
    directory: Path
    service: AlertService
    feed: ClusterOutboxFeed
    lock: threading.Lock = field(default_factory=threading.Lock)
    sequence: int = 0  # the last stream sequence applied
    checkpointed: int = 0  # the sequence of the last checkpoint written
    checkpoint_at: float = field(default_factory=time.monotonic)
    dirty: bool = False  # changed since the last checkpoint
    fingerprint: object = None  # the last `PartitionPipeline` fingerprint of its state seen
    counts: dict[str, int] = field(
        default_factory=lambda: {"messages": 0, "readings": 0, "rejected": 0, "events": 0, "checkpoints": 0}
    )


@dataclass(slots=True)
class SharedSink:
    """A sink the partitions' threads share: one writer at a time."""

    name: str
    sink: Sink
    lock: threading.Lock = field(default_factory=threading.Lock)


class PartitionPipeline:
    """Decode, validate, store, evaluate and notify each owned partition's batches."""

    def __init__(
        self,
        *,
        core: MessageProcessor,
        sinks: Sequence[SharedSink],
        deadletters: DeadLetterStore,
        make_service: Callable[[int, Path], AlertService],
        make_feed: Callable[[Path], ClusterOutboxFeed],
        checkpoints: Checkpoints,
        outbox: Outbox,
        holder: Holder,
        data_dir: Path,
        checkpoint_interval: float,
        fingerprint: Callable[[AlertService], object] | None = None,
    ) -> None:
        """`fingerprint`: a cheap mark of state that changes without batches or events (the regional
        role's daily assessments); a tick that finds it changed makes a checkpoint due."""
        self._core = core
        self._sinks = list(sinks)
        self._deadletters = deadletters
        self._make_service = make_service
        self._make_feed = make_feed
        self._checkpoints = checkpoints
        self._outbox = outbox
        self._holder = holder
        self._dir = data_dir
        self._interval = checkpoint_interval
        self._fingerprint = fingerprint
        self._owned: dict[int, _Owned] = {}
        self._lock = threading.Lock()

    # -- PartitionHandler ----------------------------------------------------------------------

    def opened(self, partition: int, epoch: int) -> int | None:
        """Rebuild the partition's alert state from its checkpoint; the sequence it covers (0: none)."""
        directory = self._dir / f"p{partition}"
        shutil.rmtree(directory, ignore_errors=True)  # a previous tenure's state may be stale
        directory.mkdir(parents=True)
        checkpoint = self._checkpoints.load(partition)
        sequence = 0
        if checkpoint is not None:
            (directory / "alerts.db").write_bytes(checkpoint.data)
            sequence = checkpoint.sequence
            # Saved again at this epoch at once: a deposed owner can no longer move it forward.
            self._checkpoints.save(partition, epoch, sequence, checkpoint.data)
        service = self._make_service(partition, directory / "alerts.db")
        try:
            feed = self._make_feed(directory / "alerts.db")
        except BaseException:
            service.close()
            raise
        state = _Owned(partition, epoch, directory, service, feed, sequence=sequence, checkpointed=sequence)
        with self._lock:
            self._owned[partition] = state
        log.info(
            "partition_state_opened",
            partition=partition,
            epoch=epoch,
            checkpoint=sequence,
            checkpoint_epoch=checkpoint.epoch if checkpoint else None,
        )
        return sequence

    def handle(
        self, partition: int, epoch: int, batch: list[StationMessage], held: Callable[[], bool]
    ) -> bool:
        state = self._state(partition, epoch)
        if state is None:
            return False
        with state.lock:
            telemetry.MESSAGES_RECEIVED.inc(len(batch))  # a batch handed again counts again
            records = [(m.sequence, encode_message(m.topic, m.payload, m.received_ns)) for m in batch]
            readings: list[Reading] = []
            letters: list[DeadLetter] = []
            for encoded, _count, rejected, outcome in process_batch(self._core, records, time.time_ns()):
                if encoded is not None:
                    readings.extend(decode_readings(encoded))
                letters.extend(rejected)
                telemetry.MESSAGES_PROCESSED.labels(outcome).inc()
            telemetry.READINGS_ACCEPTED.inc(len(readings))
            for reason, count in Counter(str(dead.reason) for dead in letters).items():
                telemetry.READINGS_REJECTED.labels(reason).inc(count)
            self._deadletters.add_many(letters)
            if not held():
                return False
            for shared in self._sinks:
                if not self._write(shared, readings):
                    return False
            state.service.write(readings)  # SinkError(retryable) on database trouble: the batch again
            self._forward(state)
            state.sequence = max(state.sequence, batch[-1].sequence)
            state.dirty = True
            state.counts["messages"] += len(batch)
            state.counts["readings"] += len(readings)
            state.counts["rejected"] += len(letters)
            self._checkpoint_if_due(state)
            return True

    def closed(self, partition: int) -> None:
        with self._lock:
            state = self._owned.pop(partition, None)
        if state is None:
            return
        with state.lock:
            try:
                self._forward(state)
                if state.dirty:
                    self._checkpoint(state, final=True)
            except Exception as exc:  # the next owner replays from the last checkpoint instead
                log.warning("partition_final_checkpoint_failed", partition=partition, error=repr(exc))
            state.feed.close()
            state.service.close()
            shutil.rmtree(state.directory, ignore_errors=True)
        log.info("partition_state_closed", partition=partition, epoch=state.epoch, sequence=state.sequence)

    # -- the time-driven side (the worker's ticker thread) --------------------------------------

    def tick(self, now: Any) -> None:
        """Each partition's engine `tick` (silence, reminders, escalations); a checkpoint when one
        is due (a quiet partition's last batches get theirs here).

        What a tick decides depends on the wall clock, so a next owner replaying the partition
        would not decide it again: when a tick wrote events, the state that holds them is
        checkpointed before they are published, and a next owner publishes what is left.
        """
        for state in self._states():
            with state.lock:
                if not self._holder.holds(state.partition, state.epoch):
                    continue
                try:
                    state.service.tick(now)
                    if self._fingerprint is not None:
                        mark = self._fingerprint(state.service)
                        if mark != state.fingerprint:
                            state.fingerprint, state.dirty = mark, True
                    if state.feed.pending(1):
                        state.dirty = True
                        if self._checkpoint(state):
                            self._forward(state)
                            state.dirty = True  # the moved watermark
                    self._checkpoint_if_due(state)
                except Exception as exc:  # retried at the next tick
                    log.warning("partition_tick_failed", partition=state.partition, error=repr(exc))

    def stats(self) -> dict[int, dict[str, int]]:
        return {
            s.partition: {
                **s.counts,
                "epoch": s.epoch,
                "sequence": s.sequence,
                "checkpointed": s.checkpointed,
            }
            for s in self._states()
        }

    def services(self) -> list[AlertService]:
        return [s.service for s in self._states()]

    # -- the steps -----------------------------------------------------------------------------

    def _state(self, partition: int, epoch: int) -> _Owned | None:
        with self._lock:
            state = self._owned.get(partition)
        return state if state is not None and state.epoch == epoch else None

    def _states(self) -> list[_Owned]:
        with self._lock:
            return list(self._owned.values())

    def _write(self, shared: SharedSink, readings: list[Reading]) -> bool:
        """Write to one sink; refused readings are dead-lettered one by one. False: retry later."""
        if not readings:
            return True
        with shared.lock:
            try:
                shared.sink.write(readings)
            except SinkError as exc:
                if exc.retryable:
                    log.warning("cluster_sink_retry", sink=shared.name, reason=exc.reason, detail=exc.detail)
                    return False
                if len(readings) == 1:
                    self._refused(shared.name, readings[0], exc)
                    return True
            else:
                telemetry.SINK_WRITTEN.labels(shared.name).inc(len(readings))
                return True
        half = len(readings) // 2
        return self._write(shared, readings[:half]) and self._write(shared, readings[half:])

    def _refused(self, sink: str, reading: Reading, exc: SinkError) -> None:
        self._deadletters.add_many(
            [
                DeadLetter(
                    received_ns=time.time_ns(),
                    topic=f"sink/{sink}",
                    payload=repr(reading).encode()[:4000],
                    reason=RejectReason.SINK_REJECTED,
                    detail=f"{exc.reason}: {exc.detail}"[:2000],
                    format="reading",
                    station_id=reading.station_id,
                    parameter=reading.parameter,
                )
            ]
        )
        telemetry.SINK_DEAD_LETTERED.labels(sink).inc()

    def _forward(self, state: _Owned) -> int:
        """Publish the partition's new events to the outbox stream, then move the watermark."""
        forwarded = 0
        while items := state.feed.pending():
            for item in items:
                self._outbox.publish(item.key, item.payload, topic=item.topic)
            state.feed.forwarded(items[-1].event_id)
            forwarded += len(items)
        state.counts["events"] += forwarded
        return forwarded

    def _checkpoint_if_due(self, state: _Owned) -> None:
        """The periodic checkpoint. Failing it (no leader for the buckets during an election)
        fails nothing else: what it would save is durable in the sinks, the engine's database and
        the outbox stream, and a next owner replays a little more; it is tried again an interval on."""
        if not state.dirty or time.monotonic() - state.checkpoint_at < self._interval:
            return
        try:
            self._checkpoint(state)
        except Exception as exc:
            state.checkpoint_at = time.monotonic()
            log.warning("partition_checkpoint_failed", partition=state.partition, error=repr(exc))

    def _checkpoint(self, state: _Owned, *, final: bool = False) -> bool:
        """Save the partition's state while held (a `final` one while being handed over too);
        True once saved."""
        if not self._holder.holds(state.partition, state.epoch, releasing=final):
            return False
        image = _image(state.directory / "alerts.db")
        saved = self._checkpoints.save(state.partition, state.epoch, state.sequence, image)
        if saved:
            state.checkpointed = state.sequence
            state.dirty = False
            state.counts["checkpoints"] += 1
        state.checkpoint_at = time.monotonic()
        return saved


def _image(path: Path) -> bytes:
    """A consistent image of a SQLite database (WAL included), as one file's bytes."""
    source = sqlite3.connect(path)
    try:
        target = sqlite3.connect(":memory:")
        try:
            source.backup(target)
            return target.serialize()
        finally:
            target.close()
    finally:
        source.close()
