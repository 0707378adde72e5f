"""`CheckpointStore`: a partition's alert state in JetStream, fenced by its owner's epoch.

The owner of a partition keeps its alert state in a local SQLite file; it checkpoints the file's
image so that the partition's next owner continues where this one stopped:

    save(p, epoch, sequence, image) ─▶ object `p<p>-e<epoch>-s<sequence>-<random>` in `<prefix>-state`
                                      ─▶ pointer `partition.<p>` in `<prefix>-checkpoints`, moved by CAS
                                         {epoch, sequence, object, size, sha256}
                                      ─▶ the previous pointer's object deleted
    load(p) ─▶ pointer ─▶ object ─▶ size and sha256 checked ─▶ Checkpoint(p, epoch, sequence, image)

`sequence` is the stations-stream sequence the image covers (everything up to it applied); the
new owner replays the partition from `sequence + 1`. A pointer's *position* is (epoch, sequence),
compared epoch first.

Fencing: a stale owner never overwrites a newer owner's checkpoint.
1. The pointer moves only by a compare-and-set on the revision the writer read (`create` when
   there is none, `update(last=revision)`), and only to a position not below the one stored at
   that revision (else the save is refused); on a CAS conflict the writer reads again and decides
   again. So in the KV's order of writes (one stream leader: linearizable) the pointer's position
   never decreases.
2. Epochs strictly increase per partition (`ingest.cluster.ownership`). Once the owner at epoch E
   has stored a checkpoint, every later pointer has an epoch >= E, and a writer at e < E is
   refused for good: its CAS either fails (a write came after its read; it reads again and sees
   >= E) or it read after that write and is refused at once. Nothing here trusts a lease deadline
   or a clock: the decision is taken against the KV's state at the CAS, however long the stale
   owner slept (SIGSTOP, a GC pause, a suspended VM) between its `holds()` check and its save.
3. Equal epochs come from one owner (its threads or its retries): a higher sequence wins, an equal
   one replaces (the state changes without new messages: silent-station rules run on the clock).

The window, by design: until the new owner's first checkpoint the pointer still carries the old
epoch, so a stale owner can still move it forward *within its own epoch*, (e_old, s) → (e_old, s').
That checkpoint is an image the old owner built from the stream up to s', and image and sequence
change together in one pointer write, so it is a consistent place to resume:
- a new owner that loaded before it continues from (e_old, s); its first save (e_new) replaces the
  stale pointer whatever the sequences (positions compare by epoch first, so the sequence may go
  backwards across epochs: allowed) and deletes the stale image;
- a new owner that loads after it continues from s' and replays less.
This holds only if every image is safe to resume from: **checkpoint a state only once every side
effect it records is durable** (the outbox's PubAck for each transition the state counts as
notified). A fenced owner that skipped a publish but checkpointed "notified" would make the next
owner lose that notification. To close the window at once, a new owner saves right after its load
(the loaded image at its own epoch): from then on a stale owner is refused.

Storage. Every upload gets a name of its own (the random suffix), so a retry or an equal position
never overwrites an image a pointer references. An object is deleted by purging its chunks, then
its meta subject: the client's `delete` would leave a tombstone per checkpoint, forever. An upload
whose pointer move did not happen (a crash or a transient error in between, a lost delete) is an
orphan; objects of the partition strictly below the pointer's position can never be installed
(1.), so they are swept after a load and after the first successful save that follows a failure.
Objects are read chunk by chunk (`get_msg` next-by-subject, each request bounded by
`request_timeout`), not with the client's `get`: its ordered consumer waits forever when the
chunks were purged between its meta read and its subscription (a concurrent delete).

Usage (one store per worker, shared by the partition threads):
    store = CheckpointStore(servers, replicas=3, name=worker_id).start()
    # on_acquired(p, epoch):
    ck = store.load(p)                       # None: replay the partition from its beginning
    if ck is not None: store.save(p, epoch, ck.sequence, ck.data)   # fence the old owner now
    # every checkpoint_interval, once the outbox acknowledged what the state records:
    if ownership.holds(p, epoch): store.save(p, epoch, applied_sequence, sqlite_image)
    store.close()
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue
from nats.js.object_store import (
    OBJ_CHUNKS_PRE_TEMPLATE,
    OBJ_META_PRE_TEMPLATE,
    OBJ_STREAM_TEMPLATE,
    ObjectStore,
)

from ingest.cluster.buckets import TRANSIENT, connect, ensure_bucket
from ingest.wal.jetstream.bridge import LoopThread

log = structlog.get_logger(__name__)

# JetStream API error: a stream of that name exists with another configuration.
_STREAM_NAME_IN_USE: Final = 10058
_OBJECT: Final = re.compile(r"^p(\d+)-e(\d+)-s(\d+)-[0-9a-f]+$")
# Each CAS conflict is another writer's success on the same pointer; with one owner per epoch a
# handful is already a storm. Past this many the save gives up (its upload deleted) and raises.
_CAS_ROUNDS: Final = 16
# A load that finds its object gone reads the pointer again (a save moved it meanwhile).
_LOAD_ROUNDS: Final = 3


def state_bucket(prefix: str) -> str:
    return f"{prefix}-state"


def checkpoints_bucket(prefix: str) -> str:
    return f"{prefix}-checkpoints"


def checkpoint_key(partition: int) -> str:
    return f"partition.{partition}"


def object_name(partition: int, epoch: int, sequence: int) -> str:
    """A name of its own for one upload: `p<partition>-e<epoch>-s<sequence>-<random>`."""
    return f"p{partition}-e{epoch}-s{sequence}-{os.urandom(4).hex()}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A partition's state as its owner at `epoch` saved it, covering the stream up to `sequence`."""

    partition: int
    epoch: int
    sequence: int
    data: bytes


@dataclass(frozen=True, slots=True)
class _Pointer:
    epoch: int
    sequence: int
    object: str
    size: int
    sha256: str

    @property
    def position(self) -> tuple[int, int]:
        return (self.epoch, self.sequence)

    def encode(self) -> bytes:
        fields = {"epoch": self.epoch, "sequence": self.sequence, "object": self.object}
        return json.dumps({**fields, "size": self.size, "sha256": self.sha256}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> _Pointer:
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("a checkpoint pointer is a JSON object")
        name, digest = value.get("object"), value.get("sha256")
        if not isinstance(name, str) or not isinstance(digest, str):
            raise ValueError("a checkpoint pointer names its object and sha256")
        return cls(
            _natural(value, "epoch"), _natural(value, "sequence"), name, _natural(value, "size"), digest
        )


@dataclass(frozen=True, slots=True)
class _Read:
    """A load's raw result: the pointer, its revision, and the image (None: `problem` says why)."""

    pointer: _Pointer
    revision: int
    data: bytes | None
    problem: str | None


class CheckpointStore:
    """Saves and loads partition checkpoints; thread-safe, one per worker."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        bucket_prefix: str = "ecowatch",
        replicas: int = 1,
        request_timeout: float = 2.0,
        name: str = "worker",
    ) -> None:
        self.servers = list(servers)
        self._prefix = bucket_prefix
        self._replicas = replicas
        self._timeout = request_timeout
        self._name = name
        self._state = state_bucket(bucket_prefix)
        self._stream = OBJ_STREAM_TEMPLATE.format(bucket=self._state)
        self._lock = threading.Lock()
        self._counts = {"saved": 0, "refused": 0, "loaded": 0, "bytes_saved": 0, "corrupt": 0, "swept": 0}
        # Partitions that may have an orphaned image (a failed save or delete): swept after the
        # next successful save.
        self._unsettled: set[int] = set()
        self._bridge: LoopThread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Connect and create (or bind to) the object store and the pointers bucket."""
        self._bridge = LoopThread.opened(f"checkpoints-{self._name}", self._open())
        return self

    def close(self) -> None:
        """Disconnect. Idempotent."""
        bridge, self._bridge = self._bridge, None
        if bridge is None:
            return
        try:
            bridge.run(self._quietly(self._nc.close()))
        finally:
            bridge.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the partitions' interface -------------------------------------------------------------

    def load(self, partition: int) -> Checkpoint | None:
        """The partition's latest checkpoint, verified; None when there is none or it is damaged
        (logged: replaying from the beginning beats trusting a torn image). Transient errors raise."""
        bridge = self._running()
        for _ in range(_LOAD_ROUNDS):
            read = bridge.run(self._read(partition))
            if read is None:
                return None
            problem = read.problem or _mismatch(read.pointer, read.data)
            if problem is None and read.data is not None:
                self._count("loaded")
                bridge.spawn(self._sweep(partition, read.pointer))
                return Checkpoint(partition, read.pointer.epoch, read.pointer.sequence, read.data)
            if bridge.run(self._revision(partition)) == read.revision:
                self._count("corrupt")
                log.error(
                    "checkpoint_corrupt",
                    partition=partition,
                    object=read.pointer.object,
                    epoch=read.pointer.epoch,
                    sequence=read.pointer.sequence,
                    problem=problem,
                )
                return None
        log.warning("checkpoint_moving", partition=partition, rounds=_LOAD_ROUNDS)
        return None

    def save(self, partition: int, epoch: int, sequence: int, data: bytes) -> bool:
        """Store `data` as the partition's state at (epoch, sequence). False (logged, nothing
        changed) when the stored checkpoint is ahead: a higher epoch (this writer is stale) or the
        same epoch and a higher sequence. Transient errors raise; the next save retries."""
        if min(partition, epoch, sequence) < 0:
            raise ValueError("partition, epoch and sequence must not be negative")
        bridge = self._running()
        data = bytes(data)
        # Hashed on the caller's thread: several MB would hold the loop for milliseconds.
        digest = hashlib.sha256(data).hexdigest()
        pointer = _Pointer(epoch, sequence, object_name(partition, epoch, sequence), len(data), digest)
        try:
            stored, other = bridge.run(self._save(partition, pointer, data))
        except BaseException:
            with self._lock:
                self._unsettled.add(partition)
            raise
        if not stored:
            assert other is not None
            self._count("refused")
            log.warning(
                "checkpoint_refused",
                partition=partition,
                epoch=epoch,
                sequence=sequence,
                stored_epoch=other.epoch,
                stored_sequence=other.sequence,
            )
            return False
        with self._lock:
            self._counts["saved"] += 1
            self._counts["bytes_saved"] += len(data)
            unsettled = partition in self._unsettled
            self._unsettled.discard(partition)
        if unsettled:
            bridge.spawn(self._sweep(partition, pointer))
        log.debug("checkpoint_saved", partition=partition, epoch=epoch, sequence=sequence, bytes=len(data))
        return True

    def stats(self) -> dict[str, int]:
        """saved, refused, loaded, bytes_saved; corrupt (loads that found a damaged image) and
        swept (orphaned images deleted)."""
        with self._lock:
            return dict(self._counts)

    # -- on the loop ---------------------------------------------------------------------------

    async def _open(self) -> None:
        self._nc: Client = await connect(self.servers, f"ecowatch-checkpoints-{self._name}", self._timeout)
        self._js: JetStreamContext = self._nc.jetstream(timeout=self._timeout)
        try:
            self._pointers: KeyValue = await ensure_bucket(
                self._js, checkpoints_bucket(self._prefix), replicas=self._replicas, ttl=None
            )
            self._objects: ObjectStore = await self._ensure_object_store()
        except BaseException:
            await self._nc.close()
            raise

    async def _ensure_object_store(self) -> ObjectStore:
        config = api.ObjectStoreConfig(replicas=self._replicas, storage=api.StorageType.FILE)
        try:
            return await self._js.create_object_store(self._state, config=config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise
            return await self._js.object_store(self._state)

    async def _save(self, partition: int, pointer: _Pointer, data: bytes) -> tuple[bool, _Pointer | None]:
        """Upload, then move the pointer by CAS: (True, replaced) or (False, the pointer ahead)."""
        await self._objects.put(pointer.object, data)
        key = checkpoint_key(partition)
        for _ in range(_CAS_ROUNDS):
            current, revision = await self._pointer(partition)
            if current is not None and current.position > pointer.position:
                await self._discard(pointer.object)
                return False, current
            try:
                if revision:
                    await self._pointers.update(key, pointer.encode(), last=revision)
                else:
                    await self._pointers.create(key, pointer.encode())
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another writer moved it since our read: read and decide again
            if current is not None and current.object != pointer.object:
                await self._discard(current.object)
            return True, current
        await self._discard(pointer.object)
        raise RuntimeError(f"checkpoint of partition {partition}: the pointer kept changing under the CAS")

    async def _pointer(self, partition: int) -> tuple[_Pointer | None, int]:
        """The stored pointer (None: none, or unreadable and so to be replaced) and its revision."""
        try:
            entry = await self._pointers.get(checkpoint_key(partition))
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        try:
            return _Pointer.decode(entry.value or b""), entry.revision or 0
        except ValueError:
            log.error("checkpoint_pointer_unreadable", partition=partition, revision=entry.revision)
            return None, entry.revision or 0

    async def _revision(self, partition: int) -> int:
        return (await self._pointer(partition))[1]

    async def _read(self, partition: int) -> _Read | None:
        pointer, revision = await self._pointer(partition)
        if pointer is None:
            return None
        try:
            info = await self._objects.get_info(pointer.object)
        except (nats.js.errors.ObjectNotFoundError, nats.js.errors.BadObjectMetaError):
            return _Read(pointer, revision, None, "missing")
        if info.size != pointer.size:
            return _Read(pointer, revision, None, f"size {info.size}, expected {pointer.size}")
        subject = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self._state, obj=info.nuid)
        image = bytearray()
        seq = 1
        while len(image) < pointer.size:
            try:
                chunk = await self._js.get_msg(self._stream, seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return _Read(pointer, revision, None, f"chunks missing after {len(image)} bytes")
            image += chunk.data or b""
            seq = (chunk.seq or seq) + 1
        return _Read(pointer, revision, bytes(image), None)

    async def _discard(self, name: str) -> bool:
        """Delete an object, chunks first (a meta left behind is found by the sweep); best effort."""
        meta = OBJ_META_PRE_TEMPLATE.format(
            bucket=self._state, obj=base64.urlsafe_b64encode(name.encode()).decode()
        )
        try:
            try:
                info = await self._objects.get_info(name, show_deleted=True)
                chunks = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self._state, obj=info.nuid)
                await self._js.purge_stream(self._stream, subject=chunks)
            except (nats.js.errors.ObjectNotFoundError, nats.js.errors.BadObjectMetaError):
                pass
            await self._js.purge_stream(self._stream, subject=meta)
        except (*TRANSIENT, nats.errors.Error) as exc:
            log.debug("checkpoint_delete_failed", object=name, error=repr(exc))
            match = _OBJECT.fullmatch(name)
            if match is not None:
                with self._lock:  # below the pointer by now: the next save's sweep deletes it
                    self._unsettled.add(int(match[1]))
            return False
        return True

    async def _sweep(self, partition: int, pointer: _Pointer) -> None:
        """Delete the partition's objects below the pointer's position: they can never be installed."""
        prefix = OBJ_META_PRE_TEMPLATE.format(bucket=self._state, obj="")
        try:
            info = await self._js.stream_info(self._stream, subjects_filter=f"{prefix}>")
        except (*TRANSIENT, nats.errors.Error) as exc:
            log.debug("checkpoint_sweep_failed", partition=partition, error=repr(exc))
            with self._lock:
                self._unsettled.add(partition)
            return
        for subject in info.state.subjects or {}:
            name = _decode_name(subject[len(prefix) :])
            match = _OBJECT.fullmatch(name or "")
            if name is None or match is None or int(match[1]) != partition or name == pointer.object:
                continue
            if (int(match[2]), int(match[3])) < pointer.position and await self._discard(name):
                self._count("swept")
                log.info("checkpoint_orphan_deleted", partition=partition, object=name)

    async def _quietly(self, call: Coroutine[Any, Any, Any]) -> None:
        try:
            await call
        except (*TRANSIENT, nats.errors.Error) as exc:
            log.debug("checkpoint_request_failed", error=repr(exc))

    # -- helpers ---------------------------------------------------------------------------------

    def _running(self) -> LoopThread:
        bridge = self._bridge
        if bridge is None:
            raise RuntimeError("CheckpointStore used before start or after close")
        return bridge

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1


def _mismatch(pointer: _Pointer, data: bytes | None) -> str | None:
    """Why `data` is not the image `pointer` names, or None when it is."""
    if data is None:
        return "missing"
    if len(data) != pointer.size:
        return f"size {len(data)}, expected {pointer.size}"
    if hashlib.sha256(data).hexdigest() != pointer.sha256:
        return "sha256 mismatch"
    return None


def _natural(value: dict[str, Any], key: str) -> int:
    number = value.get(key)
    if type(number) is not int or number < 0:
        raise ValueError(f"a checkpoint pointer's {key} is a natural number")
    return number


def _decode_name(token: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(token).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
