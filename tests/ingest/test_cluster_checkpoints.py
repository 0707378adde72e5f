"""Partition checkpoints in JetStream: an object per image, a pointer per partition fenced by epoch.

Every test runs a real nats-server on loopback (a single node, or the three-node cluster with R3
buckets) and a bucket prefix of its own. The tests look at the buckets through a connection of
their own: which images exist, and what a damaged image does to `load`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final, TypeVar

import nats
import nats.errors
import pytest
from nats.js import JetStreamContext
from nats.js.object_store import OBJ_META_PRE_TEMPLATE, OBJ_STREAM_TEMPLATE
from structlog.testing import capture_logs

from ingest.cluster.buckets import TRANSIENT
from ingest.cluster.checkpoints import Checkpoint, CheckpointStore, state_bucket
from tests.helpers import wait_for
from tests.servers import NatsCluster, NatsServer

pytestmark = pytest.mark.integration

T = TypeVar("T")
MB: Final = 2**20
_runs = itertools.count()


def _image(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _on_js(servers: list[str], work: Callable[[JetStreamContext], Coroutine[Any, Any, T]]) -> T:
    """Run `work` on a JetStream connection of the test's own (not the store's)."""

    async def main() -> T:
        nc = await nats.connect(servers=servers, connect_timeout=2)
        try:
            return await work(nc.jetstream(timeout=5))
        finally:
            await nc.close()

    return asyncio.run(main())


def _objects(servers: list[str], prefix: str) -> list[str]:
    """The names of the images in the state bucket (every object still stored, deleted or not)."""
    bucket = state_bucket(prefix)
    meta = OBJ_META_PRE_TEMPLATE.format(bucket=bucket, obj="")

    async def work(js: JetStreamContext) -> list[str]:
        info = await js.stream_info(OBJ_STREAM_TEMPLATE.format(bucket=bucket), subjects_filter=f"{meta}>")
        return sorted(base64.urlsafe_b64decode(s[len(meta) :]).decode() for s in info.state.subjects or {})

    return _on_js(servers, work)


def _put(servers: list[str], prefix: str, name: str, data: bytes) -> None:
    """Write an object straight into the state bucket (overwriting one of that name)."""

    async def work(js: JetStreamContext) -> None:
        await (await js.object_store(state_bucket(prefix))).put(name, data)

    _on_js(servers, work)


def _delete(servers: list[str], prefix: str, name: str) -> None:
    async def work(js: JetStreamContext) -> None:
        await (await js.object_store(state_bucket(prefix))).delete(name)

    _on_js(servers, work)


def _attempt(call: Callable[[], T]) -> tuple[T] | None:
    """`(result,)`, or None when the call failed transiently (an election under way)."""
    try:
        return (call(),)
    except TRANSIENT:
        return None


@pytest.fixture
def prefix() -> str:
    """Bucket names of this test's own."""
    return f"ck{next(_runs)}"


@pytest.fixture
def servers(nats_server: NatsServer) -> list[str]:
    """The single node shared by the module (each test has buckets of its own)."""
    return [nats_server.url]


@pytest.fixture
def stores(servers: list[str], prefix: str) -> Iterator[Callable[[str], CheckpointStore]]:
    """Opens stores (one per worker) on the single node; all are closed at the end."""
    opened: list[CheckpointStore] = []

    def open_store(name: str) -> CheckpointStore:
        opened.append(CheckpointStore(servers, bucket_prefix=prefix, name=name).start())
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()


def test_a_multi_megabyte_image_reaches_the_next_owner_intact(
    stores: Callable[[str], CheckpointStore], servers: list[str], prefix: str
) -> None:
    """A 5 MB image saved by one worker is loaded, byte for byte, by another."""
    image = _image(5 * MB + 123, seed=1)
    old, new = stores("w1"), stores("w2")
    assert old.save(7, 3, 4242, image)
    assert new.load(7) == Checkpoint(7, 3, 4242, image)
    assert [n.split("-")[:3] for n in _objects(servers, prefix)] == [["p7", "e3", "s4242"]]
    assert old.stats() == {
        "saved": 1,
        "refused": 0,
        "loaded": 0,
        "bytes_saved": len(image),
        "corrupt": 0,
        "swept": 0,
    }
    assert new.stats()["loaded"] == 1


def test_an_unknown_partition_loads_as_none(stores: Callable[[str], CheckpointStore]) -> None:
    """A partition never checkpointed has no checkpoint: its owner replays it from the beginning."""
    store = stores("w1")
    assert store.load(0) is None
    store.save(1, 1, 1, b"state")
    assert store.load(0) is None


def test_a_stale_epoch_is_refused_and_its_upload_deleted(
    stores: Callable[[str], CheckpointStore], servers: list[str], prefix: str
) -> None:
    """A previous owner (lower epoch) saving after the new owner is refused, even with a higher
    sequence: the new owner's checkpoint stays, and the stale image is not left behind. The same
    epoch with a lower sequence is refused too."""
    new, stale = stores("new"), stores("stale")
    assert new.save(0, 5, 100, b"new owner's state")
    with capture_logs() as logs:
        assert not stale.save(0, 4, 200, b"stale owner's state")
    assert not new.save(0, 5, 99, b"older state of the new owner")
    assert new.load(0) == Checkpoint(0, 5, 100, b"new owner's state")
    (name,) = _objects(servers, prefix)
    assert name.startswith("p0-e5-s100-")
    refused = [e for e in logs if e["event"] == "checkpoint_refused"]
    assert refused == [
        {
            "event": "checkpoint_refused",
            "log_level": "warning",
            "partition": 0,
            "epoch": 4,
            "sequence": 200,
            "stored_epoch": 5,
            "stored_sequence": 100,
        }
    ]
    assert stale.stats()["refused"] == 1
    assert new.stats()["refused"] == 1


def test_the_same_epoch_and_a_higher_sequence_replaces_and_deletes_the_old_image(
    stores: Callable[[str], CheckpointStore], servers: list[str], prefix: str
) -> None:
    """The owner's next checkpoint replaces its previous one, whose image is deleted; so does one
    at the same sequence (the state changed on the clock, without new messages)."""
    store = stores("w1")
    assert store.save(1, 3, 10, b"a" * 1000)
    (first,) = _objects(servers, prefix)
    assert store.save(1, 3, 20, b"b" * 2000)
    (second,) = _objects(servers, prefix)
    assert store.save(1, 3, 20, b"c" * 3000)
    (third,) = _objects(servers, prefix)
    assert (first[:7], second[:7], third[:7]) == ("p1-e3-s", "p1-e3-s", "p1-e3-s")
    assert len({first, second, third}) == 3
    assert store.load(1) == Checkpoint(1, 3, 20, b"c" * 3000)
    assert store.stats()["saved"] == 3
    assert store.stats()["bytes_saved"] == 6000


def test_concurrent_saves_of_two_owners_end_with_the_higher_epoch(
    stores: Callable[[str], CheckpointStore], servers: list[str], prefix: str
) -> None:
    """Two owners (epochs 1 and 2, the old one with far higher sequences) save at the same time,
    from two threads: every save of epoch 2 is stored; epoch 1 is refused for good once epoch 2
    was stored; the last checkpoint of epoch 2 remains, and it is the only image left."""
    rounds = 8
    results: dict[int, list[bool]] = {1: [], 2: []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def owner(store: CheckpointStore, epoch: int, first_sequence: int) -> None:
        try:
            start.wait(5)
            for i in range(rounds):
                image = _image(200_000, seed=epoch * 100 + i)
                results[epoch].append(store.save(4, epoch, first_sequence + i, image))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=owner, args=(stores("old"), 1, 1000)),
        threading.Thread(target=owner, args=(stores("new"), 2, 10)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert results[2] == [True] * rounds
    assert results[1] == sorted(results[1], reverse=True)  # once refused, refused ever after
    loaded = stores("next").load(4)
    assert loaded == Checkpoint(4, 2, 10 + rounds - 1, _image(200_000, seed=200 + rounds - 1))
    (name,) = _objects(servers, prefix)
    assert name.startswith(f"p4-e2-s{10 + rounds - 1}-")


@pytest.mark.parametrize("damage", ["flipped", "truncated", "deleted"])
def test_a_damaged_image_loads_as_none(
    stores: Callable[[str], CheckpointStore], servers: list[str], prefix: str, damage: str
) -> None:
    """An image changed behind the pointer's back (same size, other bytes; shorter; gone) is not
    trusted: `load` logs it and answers None, so the owner replays from the beginning."""
    image = _image(300_000, seed=3)
    store = stores("w1")
    assert store.save(2, 1, 50, image)
    (name,) = _objects(servers, prefix)
    if damage == "flipped":
        _put(servers, prefix, name, image[:1000] + bytes([image[1000] ^ 1]) + image[1001:])
    elif damage == "truncated":
        _put(servers, prefix, name, image[:-1])
    else:
        _delete(servers, prefix, name)
    with capture_logs() as logs:
        assert stores("w2").load(2) is None
    assert [e["object"] for e in logs if e["event"] == "checkpoint_corrupt"] == [name]


def test_orphaned_images_below_the_pointer_are_swept_on_load(
    stores: Callable[[str], CheckpointStore], servers: list[str], prefix: str
) -> None:
    """Uploads whose pointer move never happened (a crash in between) are deleted once a load
    shows they are below the partition's checkpoint; images above it or of other partitions stay."""
    below, above, other = "p5-e1-s7-0000aaaa", "p5-e9-s1-0000bbbb", "p6-e1-s1-0000cccc"
    store = stores("w1")
    for name in (below, above, other):
        _put(servers, prefix, name, b"orphan")
    assert store.save(5, 2, 3, b"state")
    assert store.load(5) == Checkpoint(5, 2, 3, b"state")
    wait_for(lambda: below not in _objects(servers, prefix), "the orphan below the pointer to go")
    assert [n for n in _objects(servers, prefix) if not n.startswith("p5-e2-")] == [above, other]
    assert store.stats()["swept"] == 1


def test_an_upload_whose_pointer_move_failed_is_swept_by_the_next_save(
    stores: Callable[[str], CheckpointStore], servers: list[str], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save whose pointer write fails (a timeout after the upload) raises and leaves its image
    behind; the next successful save of that partition deletes it."""
    store = stores("w1")

    async def timing_out(*_: object, **__: object) -> int:
        raise nats.errors.TimeoutError

    with monkeypatch.context() as patch:
        patch.setattr(store._pointers, "create", timing_out)
        with pytest.raises(nats.errors.TimeoutError):
            store.save(8, 1, 10, b"lost")
    (orphan,) = _objects(servers, prefix)
    assert store.save(8, 1, 11, b"kept")
    wait_for(lambda: orphan not in _objects(servers, prefix), "the orphaned upload to go")
    (name,) = _objects(servers, prefix)
    assert name.startswith("p8-e1-s11-")
    assert store.load(8) == Checkpoint(8, 1, 11, b"kept")
    assert store.stats()["swept"] == 1


# -- a three-node cluster ----------------------------------------------------------------------


def test_an_r3_checkpoint_survives_losing_a_node(nats_cluster: NatsCluster, prefix: str) -> None:
    """With R3 buckets, killing the image stream's leader (kill -9) loses nothing: after the
    election the checkpoint loads intact and the next checkpoint is stored."""
    image, later = _image(2 * MB, seed=4), _image(1 * MB, seed=5)
    store = CheckpointStore(nats_cluster.urls, bucket_prefix=prefix, replicas=3, name="w1").start()
    killed: NatsServer | None = None
    try:
        assert store.save(3, 1, 100, image)
        killed = nats_cluster.stream_leader(OBJ_STREAM_TEMPLATE.format(bucket=state_bucket(prefix)))
        killed.kill()
        loaded = wait_for(lambda: _attempt(lambda: store.load(3)), "the checkpoint to load", 30.0)
        assert loaded == (Checkpoint(3, 1, 100, image),)
        assert wait_for(lambda: _attempt(lambda: store.save(3, 1, 200, later)), "a save", 30.0) == (True,)
        assert store.load(3) == Checkpoint(3, 1, 200, later)
    finally:
        store.close()
        if killed is not None:
            killed.start()
        nats_cluster.wait_healthy()
