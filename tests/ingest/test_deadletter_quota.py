"""At its quota the store counts without storing, warns once a minute, and its retention frees room."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from ingest.deadletter import DeadLetter, DeadLetterConfig, DeadLetterStore, write
from ingest.errors import RejectReason
from tests.helpers import wait_for

T_NS = 1_800_000_000 * 10**9
MINUTE_NS = 60 * 10**9
QUOTA = 2 * 2**20


class Clocks:
    """The wall clock (ns) and the monotonic clock (s) the store reads, moved by the test."""

    def __init__(self) -> None:
        self.wall_ns = T_NS
        self.mono_s = 1000.0

    def wall(self) -> int:
        return self.wall_ns

    def mono(self) -> float:
        return self.mono_s


def messages(
    first: int, count: int, *, received_ns: int, size: int = 10 * 1024, rows: int = 4
) -> list[DeadLetter]:
    """`count` rejected messages of `size` bytes at raw-log offsets from `first`, `rows` rejections each."""
    out: list[DeadLetter] = []
    for offset in range(first, first + count):
        payload = f"{offset:010d}".encode().ljust(size, b"x")
        out.extend(
            DeadLetter(
                received_ns=received_ns,
                topic="ecowatch/v1/d/s/water",
                payload=payload,
                reason=RejectReason.MALFORMED if offset % 2 else RejectReason.UNKNOWN_STATION,
                detail="why",
                format="ecowatch_json",
                station_id="s",
                parameter=f"p{k}",
                source_offset=offset,
            )
            for k in range(rows)
        )
    return out


def on_disk(path: Path) -> int:
    """Bytes of the database file and its -wal file."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def store_with(tmp_path: Path, clocks: Clocks, **config: object) -> DeadLetterStore:
    return DeadLetterStore(
        tmp_path / "dl.db",
        DeadLetterConfig.model_validate({"max_bytes": QUOTA, **config}),
        clock=clocks.wall,
        monotonic=clocks.mono,
    )


def test_at_the_quota_rejections_are_counted_not_stored_with_one_warning_a_minute(tmp_path: Path) -> None:
    """Past the quota: counts go on, payloads stop, the gauge says full, and the warning comes once a minute."""
    clocks = Clocks()
    store = store_with(tmp_path, clocks)
    before = sample("ecowatch_deadletters_unstored_total", reason="malformed", cause="full")
    with capture_logs() as logs:
        store.add_many(messages(0, 400, received_ns=T_NS))  # 4 MiB of payloads for a 2 MiB quota
        stored = store.status()["messages"]
        assert 150 < stored < 205
        assert store.status()["full"]
        assert sample("ecowatch_deadletters_full") == 1
        for batch in range(1, 6):  # five more batches within the same minute
            clocks.mono_s += 10
            store.add_many(messages(batch * 1000, 10, received_ns=T_NS))
        clocks.mono_s += 11  # a minute after the first warning
        store.add_many(messages(9000, 10, received_ns=T_NS))
    warnings = [e for e in logs if e["event"] == "deadletter_store_full"]
    assert len(warnings) == 2
    assert warnings[0]["not_stored"] == (400 - stored) * 4
    assert warnings[1]["not_stored"] == 60 * 4
    assert warnings[1]["max_bytes"] == QUOTA
    assert store.status()["messages"] == stored
    assert sum(store.counts_by_reason().values()) == 460 * 4
    assert store.status()["unstored"] == {
        "malformed": (230 - stored // 2) * 4,
        "unknown_station": (230 - (stored + 1) // 2) * 4,
    }
    assert (
        sample("ecowatch_deadletters_unstored_total", reason="malformed", cause="full") - before
        == (230 - stored // 2) * 4
    )
    assert on_disk(tmp_path / "dl.db") < QUOTA + 512 * 1024


def test_the_retention_deletes_old_messages_and_storing_resumes(tmp_path: Path) -> None:
    """Messages past max_age are deleted with their rows, the file shrinks, and new ones are stored again."""
    clocks = Clocks()
    store = store_with(tmp_path, clocks, max_age=timedelta(hours=1))
    store.add_many(messages(0, 400, received_ns=T_NS))
    full_size = on_disk(tmp_path / "dl.db")
    assert store.status()["full"]
    assert store.enforce_limits(T_NS + 30 * MINUTE_NS)["messages"] == 0  # nothing is an hour old yet
    assert store.status()["full"]
    done = store.enforce_limits(T_NS + 61 * MINUTE_NS)
    assert done["messages"] == store.status()["messages"] + done["messages"] > 0
    assert store.count() == 0
    assert on_disk(tmp_path / "dl.db") < full_size / 4
    assert not store.status()["full"]
    assert sample("ecowatch_deadletters_full") == 0
    store.add_many(messages(1000, 5, received_ns=T_NS + 61 * MINUTE_NS))
    assert store.status()["messages"] == 5
    # The counts by reason are totals since the store began: the retention does not lower them.
    assert sum(store.counts_by_reason().values()) == 405 * 4


def test_a_flood_does_not_grow_the_file_past_the_quota(tmp_path: Path) -> None:
    """20 000 rejected messages of 10 KB over hours, with a 2 MiB quota and retention, keep the file near 2 MiB."""
    clocks = Clocks()
    store = store_with(tmp_path, clocks, max_age=timedelta(minutes=30))
    path = tmp_path / "dl.db"
    largest = 0
    for batch in range(100):  # one batch of 200 messages a minute
        now = T_NS + batch * MINUTE_NS
        store.add_many(messages(batch * 200, 200, received_ns=now, rows=2))
        if batch % 5 == 4:
            store.enforce_limits(now)
        largest = max(largest, on_disk(path))
    assert largest < QUOTA + 256 * 1024
    assert sum(store.counts_by_reason().values()) == 20_000 * 2
    assert 0 < store.status()["messages"] < 205


def test_a_failing_store_never_stops_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the file cannot be written, add_many returns, the rejections are counted in memory, logged once a minute."""
    clocks = Clocks()
    store = store_with(tmp_path, clocks)
    store.add_many(messages(0, 1, received_ns=T_NS))

    def disk_full(*_args: object, **_kwargs: object) -> write.Added:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(write, "add", disk_full)
    before = sample("ecowatch_deadletters_unstored_total", reason="malformed", cause="error")
    with capture_logs() as logs:
        store.add_many(messages(1, 1, received_ns=T_NS))
        store.add_many(messages(3, 1, received_ns=T_NS))
    assert [e["event"] for e in logs] == ["deadletter_store_failed"]
    assert logs[0]["log_level"] == "error"
    assert store.counts_by_reason() == {"unknown_station": 4, "malformed": 8}
    assert store.status()["unstored"] == {"malformed": 8}
    assert sample("ecowatch_deadletters_unstored_total", reason="malformed", cause="error") - before == 8
    monkeypatch.undo()
    store.add_many(messages(5, 1, received_ns=T_NS))
    assert store.status()["messages"] == 2


def test_a_closed_store_does_not_raise_either(tmp_path: Path) -> None:
    """A dead letter arriving after close (a stage still stopping) is counted, not raised."""
    store = DeadLetterStore(tmp_path / "dl.db")
    store.close()
    letters: Sequence[DeadLetter] = messages(0, 1, received_ns=T_NS)
    with capture_logs() as logs:
        store.add_many(letters)
    assert [e["event"] for e in logs] == ["deadletter_store_failed"]


def test_the_housekeeping_thread_applies_the_retention_until_close(tmp_path: Path) -> None:
    """start() runs the retention at once on its thread; close() stops it."""
    clocks = Clocks()
    store = store_with(tmp_path, clocks, max_age=timedelta(hours=1))
    store.add_many(messages(0, 3, received_ns=T_NS))
    clocks.wall_ns = T_NS + 2 * 60 * MINUTE_NS
    with capture_logs() as logs:
        store.start()
        wait_for(
            lambda: any(e["event"] == "deadletter_retention_done" for e in logs), "the first retention run"
        )
    store.close()
    assert logs[0]["messages"] == 3


def test_a_prune_by_another_process_is_seen_by_the_next_retention(tmp_path: Path) -> None:
    """The daemon's row and message counts follow deletions made by `ecowatch deadletter prune`."""
    clocks = Clocks()
    daemon = store_with(tmp_path, clocks)
    daemon.add_many(messages(0, 4, received_ns=T_NS))
    daemon.add_many(messages(4, 2, received_ns=T_NS + MINUTE_NS))
    cli = DeadLetterStore(tmp_path / "dl.db")
    assert cli.delete_before(T_NS + 1) == (4, 16)
    cli.close()
    daemon.enforce_limits(T_NS + 2 * MINUTE_NS)
    assert (daemon.status()["messages"], daemon.status()["rows"]) == (2, 8)
    assert sample("ecowatch_deadletters_rows") == 8
