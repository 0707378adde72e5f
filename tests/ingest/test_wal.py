"""Write-ahead log: durability, visibility, consumers, retention, quota, recovery, group commit."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import WalFullError
from ingest.wal import GroupCommitter, WalReader, WriteAheadLog
from ingest.wal.segment import HEADER_BYTES

# Small segments so that a handful of records spans several of them.
SEGMENT = 1024
QUOTA = 4 * SEGMENT
RECORD = b"r" * 92  # 100 bytes framed: 10 per segment
WAIT = 5.0  # deadline for anything awaited across threads


def payload(i: int) -> bytes:
    return b"%06d" % i + RECORD[6:]


@pytest.fixture
def wal(tmp_path: Path) -> Iterator[WriteAheadLog]:
    log = WriteAheadLog(tmp_path / "wal", segment_bytes=SEGMENT, quota_bytes=QUOTA)
    yield log
    log.close()


def fill(log: WriteAheadLog, count: int) -> list[int]:
    offsets = [log.append(payload(log.end_offset)) for _ in range(count)]
    log.sync()
    return offsets


def read_all(reader: WalReader) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    while batch := reader.read(1000):
        out += batch
    return out


def segment_files(log: WriteAheadLog) -> list[str]:
    return sorted(p.name for p in log.directory.glob("*.seg"))


def reopen(log: WriteAheadLog) -> WriteAheadLog:
    log.close()
    return WriteAheadLog(log.directory, segment_bytes=SEGMENT, quota_bytes=QUOTA)


# -- append, sync, read ----------------------------------------------------------------------


def test_round_trip(wal: WriteAheadLog) -> None:
    """Appended records come back from a reader with the offsets append returned, in order."""
    offsets = [wal.append(b"a"), wal.append(b""), wal.append(b"c" * 500)]
    assert offsets == [0, 1, 2]
    assert wal.sync() == 3
    assert wal.reader("sink").read(10) == [(0, b"a"), (1, b""), (2, b"c" * 500)]


def test_records_are_invisible_until_sync(wal: WriteAheadLog) -> None:
    """A buffered record is counted in end_offset but no reader sees it before sync."""
    reader = wal.reader("sink")
    wal.append(b"pending")
    assert (wal.end_offset, wal.durable_offset) == (1, 0)
    assert reader.read(10) == []
    wal.sync()
    assert reader.read(10) == [(0, b"pending")]


def test_read_returns_at_most_max_records_and_continues(wal: WriteAheadLog) -> None:
    """Consecutive reads continue where the last stopped, across segment boundaries."""
    fill(wal, 35)
    reader = wal.reader("sink")
    first = reader.read(12)
    assert [o for o, _ in first] == list(range(12))
    assert reader.position == 12
    rest = read_all(reader)
    assert [o for o, _ in rest] == list(range(12, 35))
    assert all(record == payload(o) for o, record in first + rest)


def test_reader_blocks_until_sync_wakes_it(wal: WriteAheadLog) -> None:
    """A waiting read returns as soon as a sync makes records durable, not on append."""
    reader = wal.reader("sink")
    waiting, done = threading.Event(), threading.Event()
    got: list[tuple[int, bytes]] = []

    def consume() -> None:
        waiting.set()
        got.extend(reader.read(10, timeout=WAIT * 2))
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert waiting.wait(WAIT)
    wal.append(b"x")
    assert not done.wait(0.05)
    wal.sync()
    assert done.wait(WAIT)
    thread.join(WAIT)
    assert got == [(0, b"x")]


def test_read_times_out_with_nothing(wal: WriteAheadLog) -> None:
    """A read with a timeout and no durable data returns an empty list."""
    assert wal.reader("sink").read(10, timeout=0.01) == []


def test_close_wakes_a_blocked_reader(wal: WriteAheadLog) -> None:
    """Closing the log makes a read waiting forever return promptly with nothing."""
    reader = wal.reader("sink")
    waiting, done = threading.Event(), threading.Event()

    def consume() -> None:
        waiting.set()
        assert reader.read(10, timeout=None) == []
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert waiting.wait(WAIT)
    wal.close()
    assert done.wait(WAIT)
    thread.join(WAIT)
    with pytest.raises(RuntimeError, match="closed"):
        wal.append(b"late")
    wal.close()  # idempotent


def open_segment_files() -> int:
    """Files this process holds open whose names are segment names."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd).endswith(".seg"))


def test_close_releases_every_readers_segment_file(wal: WriteAheadLog) -> None:
    """Closing the log closes the segment files its readers hold open (and its own)."""
    fill(wal, 25)
    before = open_segment_files()
    readers = [wal.reader("a"), wal.reader("b"), wal.reader("idle")]
    readers[0].read(5)
    readers[1].read(15)
    assert open_segment_files() == before + 2
    wal.close()
    assert open_segment_files() == before - 1  # the log's own active segment too
    assert readers[0].read(5) == []


def test_close_syncs_buffered_records(wal: WriteAheadLog) -> None:
    """Records appended but not synced are written by close and survive a reopen."""
    wal.append(b"last words")
    wal = reopen(wal)
    assert wal.reader("sink").read(10) == [(0, b"last words")]
    wal.close()


# -- consumers and offsets ------------------------------------------------------------------


def test_offsets_survive_reopen(wal: WriteAheadLog) -> None:
    """A committed offset is where the consumer resumes after the log is reopened."""
    fill(wal, 5)
    reader = wal.reader("influxdb")
    reader.read(3)
    reader.commit(3)
    assert (wal.directory / "offsets" / "influxdb.offset").read_text() == "3\n"
    wal = reopen(wal)
    assert wal.consumers() == {"influxdb": 3}
    reader = wal.reader("influxdb")
    assert (reader.position, reader.committed, reader.lag()) == (3, 3, 2)
    assert [o for o, _ in reader.read(10)] == [3, 4]
    wal.close()


def test_two_consumers_at_different_paces(wal: WriteAheadLog) -> None:
    """Each consumer keeps its own position and committed offset."""
    fill(wal, 20)
    fast, slow = wal.reader("fast"), wal.reader("slow")
    fast.commit(read_all(fast)[-1][0] + 1)
    slow.commit(slow.read(4)[-1][0] + 1)
    assert wal.consumers() == {"fast": 20, "slow": 4}
    assert (fast.lag(), slow.lag()) == (0, 16)
    assert [o for o, _ in slow.read(2)] == [4, 5]


def test_new_consumer_starts_at_beginning_or_end_and_stored_offset_wins(wal: WriteAheadLog) -> None:
    """start= applies only to a consumer without a stored offset; a stored offset always wins."""
    fill(wal, 5)
    assert wal.reader("replay", start="beginning").position == 0
    assert wal.reader("live", start="end").position == 5
    fill(wal, 2)
    assert wal.reader("live", start="beginning").position == 5
    assert wal.reader("replay", start="end").position == 0


def test_consumer_names_are_validated(wal: WriteAheadLog) -> None:
    """Names that would escape the offsets directory or hide a file are refused."""
    for name in ("../etc", ".hidden", "A", "", "x" * 65, "a/b"):
        with pytest.raises(ValueError, match="consumer name"):
            wal.reader(name)


def test_seek_rereads_clamps_and_refuses_the_future(wal: WriteAheadLog) -> None:
    """seek re-reads a batch, clamps below the oldest retained record, refuses past the durable end."""
    fill(wal, 30)
    reader = wal.reader("sink")
    reader.read(5)
    batch = reader.read(5)
    reader.seek(batch[0][0])
    assert reader.read(5) == batch
    reader.seek(25)
    assert reader.read(1)[0][0] == 25
    reader.seek(3)
    assert reader.read(1) == [(3, payload(3))]
    reader.commit(30)  # deletes the first two segments
    assert wal.oldest_offset == 20
    reader.seek(0)
    assert reader.position == 20
    assert reader.read(1) == [(20, payload(20))]
    with pytest.raises(ValueError, match="outside"):
        reader.seek(31)
    with pytest.raises(ValueError, match="outside"):
        reader.commit(31)


# -- segments, retention, quota ---------------------------------------------------------------


def test_segments_roll_and_are_deleted_only_after_every_consumer_passes(wal: WriteAheadLog) -> None:
    """A full segment is sealed and deleted once all consumers committed past it, never the active one."""
    a, b = wal.reader("a"), wal.reader("b")
    fill(wal, 25)
    assert segment_files(wal) == [f"{n:020d}.seg" for n in (0, 10, 20)]
    a.commit(25)
    assert len(segment_files(wal)) == 3  # b still needs them
    b.commit(10)
    assert segment_files(wal) == [f"{n:020d}.seg" for n in (10, 20)]
    b.commit(25)
    assert segment_files(wal) == [f"{20:020d}.seg"]  # the active segment stays
    assert wal.reader("late", start="beginning").read(10)[0][0] == 20


def test_drop_consumer_unpins_segments(wal: WriteAheadLog) -> None:
    """A dropped consumer no longer holds segments back and its offset file is gone."""
    active, stale = wal.reader("active"), wal.reader("stale")
    fill(wal, 25)
    active.commit(25)
    assert stale.committed == 0
    assert len(segment_files(wal)) == 3
    wal.drop_consumer("stale")
    assert wal.consumers() == {"active": 25}
    assert not (wal.directory / "offsets" / "stale.offset").exists()
    assert len(segment_files(wal)) == 1


def test_quota_refuses_appends_and_space_returns_after_commits(wal: WriteAheadLog) -> None:
    """At the quota append raises WalFullError without appending; commits free the space."""
    reader = wal.reader("sink")
    appended = QUOTA // (len(RECORD) + HEADER_BYTES)
    for i in range(appended):
        wal.append(payload(i))
    with pytest.raises(WalFullError):
        wal.append(payload(appended))
    assert (wal.end_offset, wal.is_full()) == (appended, True)
    assert wal.usage_bytes() <= QUOTA
    wal.sync()
    reader.commit(len(read_all(reader)))
    assert not wal.is_full()
    assert wal.usage_bytes() < QUOTA
    assert wal.append(b"again") == appended


def test_a_record_larger_than_a_segment_is_refused(wal: WriteAheadLog) -> None:
    """A record that can never fit in a segment raises ValueError instead of blocking the log."""
    with pytest.raises(ValueError, match="max_record_bytes"):
        wal.append(b"x" * wal.max_record_bytes + b"x")
    assert wal.append(b"x" * wal.max_record_bytes) == 0


def test_a_log_directory_is_opened_once(wal: WriteAheadLog) -> None:
    """A second writer on the same directory is refused (records would interleave)."""
    with pytest.raises(RuntimeError, match="open elsewhere"):
        WriteAheadLog(wal.directory, segment_bytes=SEGMENT, quota_bytes=QUOTA)


# -- recovery ----------------------------------------------------------------------------------


def _truncate_mid_record(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 30)


def _append_garbage(path: Path) -> None:
    with path.open("ab") as file:
        file.write(b"\x07\x00\x00\x00garbage-that-is-not-a-record")


def _flip_last_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _zero_fill(path: Path) -> None:
    with path.open("ab") as file:
        file.write(bytes(4096))


@pytest.mark.parametrize(
    ("damage", "lost"),
    [(_truncate_mid_record, 1), (_append_garbage, 0), (_flip_last_payload_byte, 1), (_zero_fill, 0)],
)
def test_torn_tail_is_truncated_reported_and_appends_continue(
    wal: WriteAheadLog, damage: Callable[[Path], None], lost: int
) -> None:
    """A torn or corrupt tail is cut on reopen, reported, and the next append reuses its offset."""
    fill(wal, 15)
    wal.close()
    tail = wal.directory / f"{10:020d}.seg"
    size_before = tail.stat().st_size
    damage(tail)
    with structlog.testing.capture_logs() as logs:
        wal = WriteAheadLog(wal.directory, segment_bytes=SEGMENT, quota_bytes=QUOTA)
    recovery = wal.recovery
    assert recovery is not None
    assert recovery.segment == tail.name
    assert recovery.truncated_bytes > 0
    assert recovery.truncated_records_estimate >= 1
    assert tail.stat().st_size == size_before - lost * (len(RECORD) + HEADER_BYTES)
    events = [e for e in logs if e["event"] == "wal_tail_truncated"]
    assert len(events) == 1
    assert events[0]["log_level"] == "warning"
    assert events[0]["truncated_bytes"] == recovery.truncated_bytes
    assert wal.end_offset == 15 - lost
    assert wal.append(b"after") == 15 - lost
    wal.sync()
    records = read_all(wal.reader("sink"))
    assert [o for o, _ in records] == list(range(16 - lost))
    assert records[-1][1] == b"after"
    assert all(record == payload(o) for o, record in records[:-1])
    wal.close()


def test_clean_reopen_reports_no_recovery(wal: WriteAheadLog) -> None:
    """A log closed cleanly reopens with nothing truncated."""
    fill(wal, 3)
    wal = reopen(wal)
    assert wal.recovery is None
    assert wal.end_offset == 3
    wal.close()


def test_corrupt_record_in_an_older_segment_is_reported_and_skipped(wal: WriteAheadLog) -> None:
    """A damaged record in a sealed segment loses the rest of that segment only, and is reported."""
    fill(wal, 25)
    wal.close()
    first = wal.directory / f"{0:020d}.seg"
    data = bytearray(first.read_bytes())
    data[4 * (len(RECORD) + HEADER_BYTES) + HEADER_BYTES + 10] ^= 0x01  # payload of record 4
    first.write_bytes(bytes(data))
    wal = WriteAheadLog(wal.directory, segment_bytes=SEGMENT, quota_bytes=QUOTA)
    assert wal.recovery is None  # only the last segment is checked at open
    reader = wal.reader("sink")
    with structlog.testing.capture_logs() as logs:
        records = read_all(reader)
    assert [o for o, _ in records] == [0, 1, 2, 3, *range(10, 25)]
    assert [(c.segment, c.offset, c.reason, c.skipped_records) for c in wal.corruptions] == [
        (first.name, 4, "bad_checksum", 6)
    ]
    assert [(e["event"], e["log_level"], e["offset"]) for e in logs] == [("wal_record_corrupt", "error", 4)]
    wal.close()


def test_corrupt_record_in_the_active_segment_resumes_after_the_next_sync(wal: WriteAheadLog) -> None:
    """Damage in the active segment stalls readers there until a sync seals it off."""
    fill(wal, 3)
    reader = wal.reader("sink")
    active = wal.directory / f"{0:020d}.seg"
    with active.open("r+b") as file:
        file.seek((len(RECORD) + HEADER_BYTES) + HEADER_BYTES)
        file.write(b"X")  # bit rot in record 1 after it was written
    assert reader.read(10) == [(0, payload(0))]
    assert reader.read(10) == []
    assert [(c.offset, c.skipped_records) for c in wal.corruptions] == [(1, None)]
    fill(wal, 1)
    assert segment_files(wal) == [f"{0:020d}.seg", f"{3:020d}.seg"]
    assert reader.read(10) == [(3, payload(3))]


# -- group commit -----------------------------------------------------------------------------


class Acks:
    """Collects on_durable calls and checks each token's record was durable when it came."""

    def __init__(self, log: WriteAheadLog) -> None:
        self.log = log
        self.tokens: list[int] = []
        self.changed = threading.Condition()

    def __call__(self, tokens: list[int]) -> None:
        assert max(tokens) < self.log.durable_offset
        with self.changed:
            self.tokens += tokens
            self.changed.notify_all()

    def wait_for(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.tokens) >= count, WAIT)


def test_group_committer_acks_tokens_in_order_after_sync(wal: WriteAheadLog) -> None:
    """on_durable gets every token once, in submit order, only after its record is durable."""
    acks = Acks(wal)
    committer: GroupCommitter[int] = GroupCommitter(wal, acks, interval=0.002, max_records=7)
    committer.start()
    for i in range(30):
        committer.submit(payload(i), i)  # token = the offset the record gets
    assert acks.wait_for(30)
    committer.stop(WAIT)
    assert acks.tokens == list(range(30))
    assert [record for _, record in read_all(wal.reader("sink"))] == [payload(i) for i in range(30)]


def test_group_committer_syncs_as_soon_as_max_records_are_pending(wal: WriteAheadLog) -> None:
    """max_records pending records are synced without waiting out the interval."""
    acks = Acks(wal)
    committer: GroupCommitter[int] = GroupCommitter(wal, acks, interval=60.0, max_records=5)
    committer.start()
    for i in range(5):
        committer.submit(payload(i), i)
    assert acks.wait_for(5)
    for i in range(5, 8):
        committer.submit(payload(i), i)
    assert acks.tokens == [0, 1, 2, 3, 4]
    assert wal.durable_offset == 5  # the next three linger
    committer.stop(WAIT)
    assert acks.tokens == list(range(8))


def test_group_committer_stop_flushes_pending_records(wal: WriteAheadLog) -> None:
    """stop syncs and acknowledges what was submitted, even within the linger interval."""
    acks = Acks(wal)
    committer: GroupCommitter[int] = GroupCommitter(wal, acks, interval=60.0)
    committer.start()
    committer.submit(b"a", 0)
    committer.submit(b"b", 1)
    committer.stop(WAIT)
    assert acks.tokens == [0, 1]
    assert wal.durable_offset == 2
    with pytest.raises(RuntimeError, match="stopped"):
        committer.submit(b"c", 2)


def test_group_committer_holds_records_when_full_and_releases_them_in_order(wal: WriteAheadLog) -> None:
    """When full, records are held unacked in order and appended once a consumer frees space."""
    reader = wal.reader("sink")
    acks = Acks(wal)
    committer: GroupCommitter[int] = GroupCommitter(wal, acks, interval=0.002)
    capacity = QUOTA // (len(RECORD) + HEADER_BYTES)
    total = capacity + 15
    committer.start()
    with structlog.testing.capture_logs() as logs:
        for i in range(total):
            committer.submit(payload(i), i)
    assert acks.wait_for(capacity)
    assert (committer.full, committer.held) == (True, 15)
    assert acks.tokens == list(range(capacity))
    assert [e["event"] for e in logs] == ["wal_full"]
    reader.commit(len(read_all(reader)))  # frees all but the active segment
    assert acks.wait_for(total)
    committer.stop(WAIT)
    assert acks.tokens == list(range(total))
    assert (committer.full, committer.held) == (False, 0)
    rest = read_all(reader)
    assert rest == [(i, payload(i)) for i in range(capacity, total)]


def test_group_committer_refuses_an_oversized_record_while_holding(wal: WriteAheadLog) -> None:
    """A record that could never be appended is refused at submit, not held forever."""
    committer: GroupCommitter[int] = GroupCommitter(wal, lambda _tokens: None)
    while not committer.full:
        committer.submit(RECORD, 0)
    with pytest.raises(ValueError, match="max_record_bytes"):
        committer.submit(b"x" * SEGMENT, 1)
    assert committer.held == 1


def test_a_failed_fsync_acks_nothing_and_stops_the_log_until_reopened(
    wal: WriteAheadLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failed fsync no token is acknowledged and the log refuses work until reopened."""

    def broken_fsync(_fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    acks = Acks(wal)
    committer: GroupCommitter[int] = GroupCommitter(wal, acks, interval=0.001)
    monkeypatch.setattr(os, "fsync", broken_fsync)
    with structlog.testing.capture_logs() as logs:
        committer.submit(b"a", 0)
        committer.start()
        committer.stop(WAIT)
    assert isinstance(committer.failed, OSError)
    assert acks.tokens == []
    assert [e["event"] for e in logs] == ["wal_group_commit_failed"]
    with pytest.raises(RuntimeError, match="reopen"):
        wal.append(b"b")
    monkeypatch.undo()
    wal = reopen(wal)
    assert wal.append(b"c") == wal.end_offset - 1
    wal.close()


def test_concurrent_writer_and_readers_see_every_record_once_in_order(tmp_path: Path) -> None:
    """Under quota pressure, with rollover and deletion racing reads, each reader gets every record."""
    log = WriteAheadLog(tmp_path / "wal", segment_bytes=SEGMENT, quota_bytes=QUOTA)
    total = 2000
    readers = [log.reader("influxdb"), log.reader("alerts")]
    seen: dict[str, list[tuple[int, bytes]]] = {reader.name: [] for reader in readers}

    def consume(reader: WalReader) -> None:
        while len(seen[reader.name]) < total:
            batch = reader.read(7 if reader.name == "alerts" else 50, timeout=WAIT)
            if not batch:
                return
            seen[reader.name] += batch
            reader.commit(batch[-1][0] + 1)

    threads = [threading.Thread(target=consume, args=(reader,)) for reader in readers]
    for thread in threads:
        thread.start()
    acks = Acks(log)
    committer: GroupCommitter[int] = GroupCommitter(log, acks, interval=0.001)
    committer.start()
    for i in range(total):
        committer.submit(payload(i), i)
    assert acks.wait_for(total)
    committer.stop(WAIT)
    for thread in threads:
        thread.join(WAIT * 2)
    log.close()
    expected = [(i, payload(i)) for i in range(total)]
    assert seen == {"influxdb": expected, "alerts": expected}
    assert acks.tokens == list(range(total))


# -- crash consistency ------------------------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 300)),
        st.tuples(st.just("sync"), st.just(0)),
        st.tuples(st.just("crash"), st.integers(0, 40)),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops)
def test_every_synced_record_survives_crashes(ops: list[tuple[str, int]]) -> None:
    """Across random append/sync/crash sequences, reopening keeps exactly the synced records."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "0"
        log = WriteAheadLog(directory, segment_bytes=SEGMENT, quota_bytes=64 * SEGMENT, fsync=False)
        synced: list[bytes] = []
        buffered: list[bytes] = []
        try:
            for step, (op, arg) in enumerate(ops):
                if op == "append":
                    record = bytes([len(synced) % 251]) * arg
                    assert log.append(record) == len(synced) + len(buffered)
                    buffered.append(record)
                elif op == "sync":
                    assert log.sync() == len(synced) + len(buffered)
                    synced += buffered
                    buffered = []
                else:
                    # A crash: what reached the files survives, the memory buffer does not,
                    # and the tail may hold a torn write of `arg` bytes.
                    crashed = Path(tmp) / str(step + 1)
                    shutil.copytree(directory, crashed)
                    tail = max(crashed.glob("*.seg"))
                    with tail.open("ab") as file:
                        file.write(os.urandom(arg))
                    log.close()
                    log = WriteAheadLog(crashed, segment_bytes=SEGMENT, quota_bytes=64 * SEGMENT, fsync=False)
                    directory, buffered = crashed, []
                    assert log.end_offset == len(synced)
            log.sync()
            synced += buffered
            assert read_all(log.reader("check")) == list(enumerate(synced))
        finally:
            log.close()
