"""Data files and folders are created for the daemon's owner only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.store import AlertStore
from config import files
from ingest.sinks.sqlite import SQLiteSink, SQLiteSinkConfig
from ingest.wal import WriteAheadLog
from tests.ingest.delivery_support import reading


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave every new file world-writable."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)
        files.set_group_readable(False)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_logs_offsets_and_databases_are_owner_only_under_umask_0(tmp_path: Path, open_umask: None) -> None:
    """Segments, the lock, offset files, the SQLite sink and alert store (with -wal/-shm): 0600; folders 0700."""
    data = tmp_path / "data"
    wal = WriteAheadLog(data / "wal" / "raw", segment_bytes=2**16)
    wal.append(b"x" * 100)
    wal.sync()
    wal.reader("sink").commit(1)
    sink = SQLiteSink(SQLiteSinkConfig(name="sqlite", path=data / "readings.db"))
    sink.write([reading(1.0)])
    store = AlertStore(data / "alerts.db")
    try:
        modes = _modes(data)
        created = {name: mode for name, mode in modes.items() if name != "."}
        for expected_file in ("wal/raw/lock", "wal/raw/offsets/sink.offset", "readings.db-wal", "alerts.db"):
            assert expected_file in created, sorted(created)
        for name, mode in created.items():
            expected = 0o700 if (data / name).is_dir() else 0o600
            assert mode == expected, f"{name}: {oct(mode)}"
    finally:
        store.close()
        sink.close()
        wal.close()


def test_group_readable_deployments_get_0640_and_0750(tmp_path: Path, open_umask: None) -> None:
    """`data_group_readable` widens new files to the group, never to others."""
    files.set_group_readable(True)
    files.create_private_file(tmp_path / "a" / "b.db")
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "a" / "b.db").stat().st_mode) == 0o640


def test_an_existing_file_keeps_the_mode_its_operator_chose(tmp_path: Path, open_umask: None) -> None:
    """Only new files get the private mode: an operator's chmod stands."""
    path = tmp_path / "chosen.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    files.create_private_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_the_outbox_creates_its_database_owner_only(tmp_path: Path, open_umask: None) -> None:
    """The notification outbox, when it opens alerts.db first, creates it 0600 too."""
    from alerts.notify_config import NotifyConfig
    from alerts.outbox import NotificationDispatcher

    dispatcher = NotificationDispatcher(NotifyConfig(), tmp_path / "data" / "alerts.db")
    try:
        assert stat.S_IMODE((tmp_path / "data" / "alerts.db").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    finally:
        dispatcher.stop(1.0)
