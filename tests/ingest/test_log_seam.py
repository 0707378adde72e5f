"""The log seam's conformance tests: the guarantees of `ingest.wal.seam`, against every implementation.

Each test uses only the seam (`Log`, `Consumer`, `Producer`, `GroupCommitter` over a `Producer`),
never an implementation's own methods, and assumes nothing the seam does not promise: offsets
only grow (they may have gaps), a capacity is reached by appending, not computed. To check
another log, add a factory to `IMPLEMENTATIONS`: given the test's `pytest.FixtureRequest` (for
`tmp_path`, or a server fixture of its own), it returns a function that opens the same log
each time it is called, at most `CAPACITY_BYTES` big and taking records of `RECORD_BYTES`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Final

import pytest

from ingest.errors import WalFullError
from ingest.wal import Consumer, GroupCommitter, Log, WriteAheadLog
from ingest.wal.jetstream import JetStreamLog
from tests.servers import NatsCluster, NatsServer

RECORD_BYTES: Final = 100
# Small enough that a test fills it in well under a second.
CAPACITY_BYTES: Final = 64 * 1024
WAIT: Final = 5.0  # deadline for anything awaited across threads

Opener = Callable[[], Log]


def _wal(request: pytest.FixtureRequest) -> Opener:
    directory = request.getfixturevalue("tmp_path") / "wal"
    # Small segments, so that retention and rollover happen within a test.
    return lambda: WriteAheadLog(directory, segment_bytes=4096, quota_bytes=CAPACITY_BYTES)


_streams = itertools.count()


def _jetstream(urls: list[str], replicas: int) -> Opener:
    # A stream of its own per test on the module's server(s).
    stream = f"seam-{next(_streams)}"
    return lambda: JetStreamLog(urls, stream, replicas=replicas, quota_bytes=CAPACITY_BYTES)


def _jetstream_r1(request: pytest.FixtureRequest) -> Opener:
    server: NatsServer = request.getfixturevalue("nats_server")
    return _jetstream([server.url], 1)


def _jetstream_r3(request: pytest.FixtureRequest) -> Opener:
    cluster: NatsCluster = request.getfixturevalue("nats_cluster")
    return _jetstream(cluster.urls, 3)


IMPLEMENTATIONS: Final[dict[str, Callable[[pytest.FixtureRequest], Opener]]] = {
    "wal": _wal,
    "jetstream": _jetstream_r1,
    "jetstream-r3": _jetstream_r3,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def open_log(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens (and reopens) one log of the implementation under test; closes all at the end."""
    opener = IMPLEMENTATIONS[request.param](request)
    opened: list[Log] = []

    def open_() -> Log:
        opened.append(opener())
        return opened[-1]

    yield open_
    for log in opened:
        log.close()


@pytest.fixture
def log(open_log: Opener) -> Log:
    return open_log()


def record(i: int) -> bytes:
    return b"%08d" % i + bytes(RECORD_BYTES - 8)


def append_synced(log: Log, first: int, count: int) -> list[int]:
    offsets = [log.append(record(i)) for i in range(first, first + count)]
    log.sync()
    return offsets


def fill(log: Log) -> int:
    """Append records until the log is full; how many it took."""
    for i in range(2 * CAPACITY_BYTES // RECORD_BYTES):
        try:
            log.append(record(i))
        except WalFullError:
            return i
    pytest.fail("the log never reached its capacity")


def read_all(consumer: Consumer) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    while batch := consumer.read(1000):
        out += batch
    return out


# -- producing: durability before visibility ---------------------------------------------------


def test_appended_records_are_readable_only_after_sync_in_append_order(log: Log) -> None:
    """append gives growing offsets; sync makes the records durable and readable, in append order."""
    consumer = log.reader("sink")
    offsets = [log.append(record(i)) for i in range(5)]
    assert offsets == sorted(set(offsets))
    assert consumer.read(10) == []
    assert consumer.lag() == 0
    end = log.sync()
    assert end == log.durable_offset > offsets[-1]
    assert consumer.read(10) == [(o, record(i)) for i, o in enumerate(offsets)]


def test_sync_with_nothing_appended_returns_the_durable_end(log: Log) -> None:
    """An idle sync changes nothing and reports where the durable records end."""
    append_synced(log, 0, 3)
    assert log.sync() == log.sync() == log.durable_offset


def test_a_waiting_read_returns_as_soon_as_a_sync_makes_records_readable(log: Log) -> None:
    """A read blocked on an empty log wakes on sync (not on append) with the new records."""
    consumer = log.reader("sink")
    waiting, done = threading.Event(), threading.Event()
    got: list[tuple[int, bytes]] = []

    def consume() -> None:
        waiting.set()
        got.extend(consumer.read(10, timeout=WAIT * 2))
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert waiting.wait(WAIT)
    offset = log.append(record(0))
    assert not done.wait(0.05)
    log.sync()
    assert done.wait(WAIT)
    thread.join(WAIT)
    assert got == [(offset, record(0))]


def test_a_read_times_out_empty_and_returns_when_the_log_closes(log: Log) -> None:
    """With nothing to read, read returns [] after its timeout, and at once when the log closes."""
    consumer = log.reader("sink")
    assert consumer.read(10, timeout=0.01) == []
    waiting, done = threading.Event(), threading.Event()

    def consume() -> None:
        waiting.set()
        assert consumer.read(10, timeout=None) == []
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert waiting.wait(WAIT)
    log.close()
    assert done.wait(WAIT)
    thread.join(WAIT)


def test_close_makes_buffered_records_durable(open_log: Opener) -> None:
    """Records appended but not synced are durable after close and readable after a reopen."""
    log = open_log()
    offset = log.append(record(0))
    log.close()
    assert open_log().reader("sink").read(10) == [(offset, record(0))]


def test_group_commit_acknowledges_each_token_once_in_order_and_only_when_readable(log: Log) -> None:
    """GroupCommitter over the seam: every token once, in submit order, after its record is durable."""
    probe = log.reader("probe")
    readable: list[bytes] = []
    acks: list[tuple[list[int], int]] = []  # (tokens, records readable when they came)
    changed = threading.Condition()

    def on_durable(tokens: list[int]) -> None:
        readable.extend(r for _, r in read_all(probe))
        with changed:
            acks.append((tokens, len(readable)))
            changed.notify_all()

    committer: GroupCommitter[int] = GroupCommitter(log, on_durable, interval=0.002, max_records=7)
    committer.start()
    for i in range(50):
        committer.submit(record(i), i)
    with changed:
        assert changed.wait_for(lambda: sum(len(tokens) for tokens, _ in acks) >= 50, WAIT)
    committer.stop(WAIT)
    assert [token for tokens, _ in acks for token in tokens] == list(range(50))
    assert all(max(tokens) < readable_then for tokens, readable_then in acks)  # token i is record i
    assert readable == [record(i) for i in range(50)]


def test_a_record_larger_than_max_record_bytes_is_refused(log: Log) -> None:
    """append refuses a record past max_record_bytes with ValueError and takes one of exactly that size."""
    with pytest.raises(ValueError):  # noqa: PT011 - the seam promises the type, not the message
        log.append(bytes(log.max_record_bytes + 1))
    offset = log.append(bytes(log.max_record_bytes))
    log.sync()
    assert log.reader("sink").read(1) == [(offset, bytes(log.max_record_bytes))]


# -- consuming: offsets, at least once ---------------------------------------------------------


def test_a_restart_resumes_at_the_committed_offset_and_rereads_what_was_not_committed(
    open_log: Opener,
) -> None:
    """At least once: after a reopen a consumer reads again everything after its committed offset."""
    log = open_log()
    offsets = append_synced(log, 0, 6)
    consumer = log.reader("influxdb")
    batch = consumer.read(4)
    consumer.commit(batch[1][0] + 1)  # two done; two read but not committed
    assert consumer.committed == offsets[1] + 1
    log.close()
    log = open_log()
    assert log.consumers() == {"influxdb": offsets[1] + 1}
    consumer = log.reader("influxdb", start="end")  # a stored offset wins over start
    assert consumer.committed == offsets[1] + 1
    assert consumer.lag() == 4
    assert read_all(consumer) == [(o, record(i)) for i, o in enumerate(offsets) if i >= 2]


def test_seek_replays_in_order_and_refuses_the_future(log: Log) -> None:
    """seek(committed) re-reads a failed batch exactly; an offset past the durable end is refused."""
    append_synced(log, 0, 20)
    consumer = log.reader("sink")
    consumer.commit(consumer.read(5)[-1][0] + 1)
    batch = consumer.read(5)
    consumer.seek(consumer.committed)
    assert consumer.read(5) == batch
    consumer.seek(batch[3][0])
    assert consumer.read(2) == batch[3:]
    with pytest.raises(ValueError):  # noqa: PT011 - the seam promises the type, not the message
        consumer.seek(log.durable_offset + 1)
    with pytest.raises(ValueError):  # noqa: PT011
        consumer.commit(log.durable_offset + 1)


def test_lag_counts_durable_records_at_or_after_the_committed_offset(log: Log) -> None:
    """lag is the number of durable, uncommitted records: reading does not lower it, committing does."""
    consumer = log.reader("sink")
    offsets = append_synced(log, 0, 10)
    log.append(record(10))  # not durable: not counted
    assert consumer.lag() == 10
    consumer.read(10)
    assert consumer.lag() == 10
    consumer.commit(offsets[6] + 1)
    assert consumer.lag() == 3
    consumer.commit(log.sync())
    assert consumer.lag() == 0


def test_new_consumers_start_at_the_beginning_or_the_end(log: Log) -> None:
    """A new consumer starts at the oldest record or the durable end; existing ones keep their offset."""
    offsets = append_synced(log, 0, 3)
    replay, live = log.reader("replay", start="beginning"), log.reader("live", start="end")
    later = append_synced(log, 3, 2)
    assert [o for o, _ in read_all(replay)] == offsets + later
    assert [o for o, _ in read_all(live)] == later
    assert log.consumers() == {"replay": replay.committed, "live": live.committed}
    assert replay.committed <= offsets[0]
    assert offsets[-1] < live.committed <= later[0]


def test_each_consumer_gets_every_record_whatever_the_others_commit(log: Log) -> None:
    """Retention never takes a record a consumer has not committed, however far ahead another is."""
    fast, slow = log.reader("fast"), log.reader("slow")
    written: list[tuple[int, bytes]] = []
    for round_ in range(5):
        offsets = append_synced(log, round_ * 50, 50)
        written += [(o, record(round_ * 50 + i)) for i, o in enumerate(offsets)]
        fast.commit(read_all(fast)[-1][0] + 1)
    assert read_all(slow) == written
    assert fast.lag() == 0
    assert slow.lag() == len(written)


def test_a_dropped_consumer_is_forgotten(log: Log) -> None:
    """drop_consumer removes a consumer and its offset; opening it again starts it anew."""
    append_synced(log, 0, 5)
    log.reader("kept").commit(log.durable_offset)
    log.reader("stale")
    log.drop_consumer("stale")
    assert log.consumers() == {"kept": log.durable_offset}
    assert log.reader("stale", start="end").committed == log.durable_offset


# -- capacity -------------------------------------------------------------------------------------


def test_a_full_log_refuses_appends_until_its_consumers_commit(log: Log) -> None:
    """At capacity append raises WalFullError and appends nothing; consumers' commits make room."""
    consumer = log.reader("sink")
    appended = fill(log)
    assert log.usage_bytes() <= log.quota_bytes
    with pytest.raises(WalFullError):
        log.append(record(appended))
    log.sync()
    records = read_all(consumer)
    assert [r for _, r in records] == [record(i) for i in range(appended)]
    consumer.commit(records[-1][0] + 1)
    offset = log.append(record(appended))
    log.sync()
    assert consumer.read(10) == [(offset, record(appended))]


# -- threads ---------------------------------------------------------------------------------------


def test_concurrent_consumers_each_see_every_record_once_in_order(log: Log) -> None:
    """Two consumers reading and committing in their own threads while records arrive see all, in order."""
    total = 2000  # a few times the capacity: the producer waits for the consumers' commits
    consumers = {"influxdb": log.reader("influxdb"), "alerts": log.reader("alerts")}
    seen: dict[str, list[bytes]] = {name: [] for name in consumers}
    committed = threading.Event()

    def consume(name: str) -> None:
        consumer = consumers[name]
        while len(seen[name]) < total:
            batch = consumer.read(7 if name == "alerts" else 50, timeout=WAIT)
            if not batch:
                return
            seen[name] += [r for _, r in batch]
            # Another thread commits, as the processor's dead-letter writer does.
            committer = threading.Thread(target=consumer.commit, args=(batch[-1][0] + 1,))
            committer.start()
            committer.join()
            committed.set()

    threads = [threading.Thread(target=consume, args=(name,)) for name in consumers]
    for thread in threads:
        thread.start()
    i = 0
    while i < total:
        try:
            log.append(record(i))
        except WalFullError:
            # Cleared before the sync: a commit of what it makes readable must not be missed.
            committed.clear()
            log.sync()
            assert committed.wait(WAIT), "no consumer committed while the log was full"
            continue
        i += 1
        if i % 100 == 0:
            log.sync()
    log.sync()
    for thread in threads:
        thread.join(WAIT * 2)
    expected = [record(i) for i in range(total)]
    assert seen == {"influxdb": expected, "alerts": expected}
