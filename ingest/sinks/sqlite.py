"""SQLite: the default sink on a fresh machine, and the store the dashboard reads.

One file in WAL journal mode. A reading is keyed by (station_id, parameter, time_ns) and written
with `INSERT ... ON CONFLICT DO UPDATE`, so a replay of the write-ahead log overwrites instead of
duplicating. Each batch is one transaction with `synchronous=FULL`: once `write` returns, the
delivery loop moves its offset past the batch, so the batch must survive a power cut too. A
`latest` table keeps the newest reading of each station and parameter, updated in the same
transaction, so the dashboard's overview does not scan the history.

Writes come from the delivery thread, reads from the HTTP server's threads: one writer and one
reader connection, each behind its own lock; WAL lets the reader see the last committed batch
while the writer works.

Example:
    sinks:
      - {type: sqlite, name: local, path: var/readings.db}
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import orjson
from pydantic import Field

from config.files import create_private_file
from config.sqlite import immediate_transaction
from ingest.errors import SinkError
from ingest.model import DataFlag, Reading
from ingest.sinks.base import SinkConfigBase

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS readings (
    station_id  TEXT    NOT NULL,
    parameter   TEXT    NOT NULL,
    time_ns     INTEGER NOT NULL,
    measurement TEXT    NOT NULL,
    value       REAL    NOT NULL,
    unit        TEXT    NOT NULL,
    flag        TEXT    NOT NULL,
    tags        TEXT    NOT NULL,  -- JSON object, keys sorted
    PRIMARY KEY (station_id, parameter, time_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_by_time ON readings (time_ns);
CREATE TABLE IF NOT EXISTS latest (
    station_id  TEXT    NOT NULL,
    parameter   TEXT    NOT NULL,
    time_ns     INTEGER NOT NULL,
    measurement TEXT    NOT NULL,
    value       REAL    NOT NULL,
    unit        TEXT    NOT NULL,
    flag        TEXT    NOT NULL,
    tags        TEXT    NOT NULL,
    PRIMARY KEY (station_id, parameter)
) WITHOUT ROWID;
"""
_COLUMNS: Final = "station_id, parameter, time_ns, measurement, value, unit, flag, tags"
_UPSERT: Final = """
INSERT INTO readings (station_id, parameter, time_ns, measurement, value, unit, flag, tags)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, parameter, time_ns) DO UPDATE SET
    measurement = excluded.measurement, value = excluded.value, unit = excluded.unit,
    flag = excluded.flag, tags = excluded.tags
"""
_UPSERT_LATEST: Final = """
INSERT INTO latest (station_id, parameter, time_ns, measurement, value, unit, flag, tags)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, parameter) DO UPDATE SET
    time_ns = excluded.time_ns, measurement = excluded.measurement, value = excluded.value,
    unit = excluded.unit, flag = excluded.flag, tags = excluded.tags
WHERE excluded.time_ns >= latest.time_ns
"""
_SELECT_LATEST: Final = (
    "SELECT station_id, parameter, time_ns, measurement, value, unit, flag, tags"
    " FROM latest ORDER BY station_id, parameter"
)
# Errors that the rows themselves cause (a constraint, a value SQLite cannot bind, such as an
# integer past 64 bits); everything else of sqlite3's (locked, I/O, disk full) is the store's.
_REFUSED_INPUT = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    OverflowError,
    TypeError,
    ValueError,
)
# Wait this long for the other connection's lock before failing (a checkpoint, a long read).
BUSY_TIMEOUT_SECONDS: Final = 5.0

_Row = tuple[str, str, int, str, float, str, str, str]


class SQLiteSinkConfig(SinkConfigBase):
    type: Literal["sqlite"] = "sqlite"
    path: Path = Field(Path("var/readings.db"), description="Database file; its folder is created.")


class SQLiteSink:
    name: ClassVar[str] = "sqlite"

    def __init__(self, config: SQLiteSinkConfig) -> None:
        self._path = config.path
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None

    def write(self, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        tag_texts: dict[tuple[tuple[str, str], ...], str] = {}
        rows: list[_Row] = []
        latest: dict[tuple[str, str], _Row] = {}
        for r in readings:
            tags = tag_texts.get(r.tags)
            if tags is None:
                tags = tag_texts[r.tags] = orjson.dumps(dict(r.tags)).decode()
            row = (r.station_id, r.parameter, r.time_ns, r.measurement, r.value, r.unit, str(r.flag), tags)
            rows.append(row)
            newest = latest.get((r.station_id, r.parameter))
            if newest is None or r.time_ns >= newest[2]:
                latest[(r.station_id, r.parameter)] = row
        with self._write_lock:
            try:
                connection = self._writer = self._writer or self._connect()
                with immediate_transaction(connection):
                    connection.executemany(_UPSERT, rows)
                    connection.executemany(_UPSERT_LATEST, latest.values())
            except _REFUSED_INPUT as exc:
                # The readings, not the database: the same rows would fail again (the loop
                # narrows the batch down to them and dead-letters them).
                raise SinkError("rejected", f"{type(exc).__name__}: {exc}", retryable=False) from None
            except (sqlite3.Error, OSError) as exc:
                raise SinkError("storage", f"{self._path}: {exc}", retryable=True) from None

    def check(self) -> None:
        with self._write_lock:
            try:
                connection = self._writer = self._writer or self._connect()
                connection.execute("SELECT 1 FROM readings LIMIT 1").fetchall()
            except (sqlite3.Error, OSError) as exc:
                raise SinkError("storage", f"{self._path}: {exc}", retryable=True) from None

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def query(
        self,
        station_id: str | None = None,
        parameter: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 1000,
    ) -> list[Reading]:
        """The newest `limit` matching readings, oldest first; `since_ns` inclusive, `until_ns` exclusive."""
        if limit < 1:
            raise ValueError("limit must be positive")
        conditions: list[str] = []
        values: list[str | int] = []
        for condition, value in (
            ("station_id = ?", station_id),
            ("parameter = ?", parameter),
            ("time_ns >= ?", since_ns),
            ("time_ns < ?", until_ns),
        ):
            if value is not None:
                conditions.append(condition)
                values.append(value)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT {_COLUMNS} FROM readings {where} ORDER BY time_ns DESC LIMIT ?"  # noqa: S608 - fixed fragments only
        rows = self._read(sql, (*values, limit))
        return [_reading(row) for row in reversed(rows)]

    def count(self) -> int:
        """How many readings the file holds."""
        return int(self._read("SELECT COUNT(*) FROM readings", ())[0][0])

    def latest_by_station(self) -> dict[str, dict[str, Reading]]:
        """The newest reading of every parameter, per station: {station_id: {parameter: reading}}."""
        result: dict[str, dict[str, Reading]] = {}
        for row in self._read(_SELECT_LATEST, ()):
            result.setdefault(row[0], {})[row[1]] = _reading(row)
        return result

    def _read(self, sql: str, values: tuple[str | int, ...]) -> list[Any]:
        with self._read_lock:
            connection = self._reader = self._reader or self._connect()
            return connection.execute(sql, values).fetchall()

    def _connect(self) -> sqlite3.Connection:
        create_private_file(self._path)
        # Autocommit mode: transactions are explicit (`immediate_transaction` in write).
        connection = sqlite3.connect(
            self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection


def _reading(row: Sequence[Any]) -> Reading:
    station_id, parameter, time_ns, measurement, value, unit, flag, tags = row
    return Reading(
        station_id=station_id,
        measurement=measurement,
        parameter=parameter,
        value=value,
        unit=unit,
        time_ns=time_ns,
        flag=DataFlag(flag),
        tags=tuple(sorted(orjson.loads(tags).items())),
    )
