"""SQLite: the default sink on a fresh machine, and the store the dashboard reads.

One file, opened through `config.sqlite.open_database` with `SCHEMA` (owned here; the dashboard's
read-only query opens it with the same): owner-only, WAL journal mode, the version check. A
reading is keyed by (station_id, parameter, data_kind, time_ns) and written with `INSERT ... ON
CONFLICT DO UPDATE`, so a replay of the write-ahead log overwrites instead of duplicating. Each
batch is one transaction with `synchronous=FULL`: once `write` returns, the delivery loop moves
its offset past the batch, so the batch must survive a power cut too. A `latest` table keeps the
newest reading of each station and parameter (of whatever kind), updated in the same transaction,
so the dashboard's overview does not scan the history.

Columns beside the value: `flag` (the HJ 212 data flag), `below_dl` (1 when the value is a
detection limit, the result being below it: `0.01L`; else 0), `data_kind` (`realtime`, `minute`,
`hourly`, `daily` or `lab`: the reading's `data_kind` tag, `realtime` without one; part of the
key, so an hourly mean and the real-time value of the same time are two rows), `time_corrected`
(1 when `time_ns` is the logger's time corrected by its measured clock error, see the HJ 212
gateway; else 0) and `tags` (JSON, the `data_kind` tag included). Schema 2 added `below_dl` and
`data_kind`, schema 3 `time_corrected`. An older file is upgraded when the sink opens it: a schema
1 file's rows are real-time, measured and uncorrected (nothing else existed then), which rewrites
the readings table once; a schema 2 file's rows are uncorrected (nothing was marked then), a
column added to each table without rewriting either.

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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import orjson
import structlog
from pydantic import Field

from config.sqlite import Schema, immediate_transaction, open_database
from ingest.errors import SinkError, SinkReason
from ingest.model import DATA_KIND_TAG, DataFlag, DataKind, Reading
from ingest.sinks.base import SinkConfigBase

log = structlog.get_logger(__name__)

SCHEMA_VERSION: Final = 3
_READINGS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS readings (
    station_id  TEXT    NOT NULL,
    parameter   TEXT    NOT NULL,
    data_kind   TEXT    NOT NULL DEFAULT 'realtime',  -- DataKind value
    time_ns     INTEGER NOT NULL,
    measurement TEXT    NOT NULL,
    value       REAL    NOT NULL,  -- the detection limit when below_dl
    unit        TEXT    NOT NULL,
    flag        TEXT    NOT NULL,
    below_dl    INTEGER NOT NULL DEFAULT 0,
    tags        TEXT    NOT NULL,  -- JSON object, keys sorted
    time_corrected INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (station_id, parameter, data_kind, time_ns)
) WITHOUT ROWID
"""
_SCHEMA: Final = f"""
{_READINGS_TABLE};
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
    data_kind   TEXT    NOT NULL DEFAULT 'realtime',
    below_dl    INTEGER NOT NULL DEFAULT 0,
    time_corrected INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (station_id, parameter)
) WITHOUT ROWID;
"""
_COLUMNS: Final = (
    "station_id, parameter, time_ns, measurement, value, unit, flag, tags, data_kind, below_dl, "
    "time_corrected"
)
_UPSERT: Final = """
INSERT INTO readings (station_id, parameter, time_ns, measurement, value, unit, flag, tags,
                      data_kind, below_dl, time_corrected)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, parameter, data_kind, time_ns) DO UPDATE SET
    measurement = excluded.measurement, value = excluded.value, unit = excluded.unit,
    flag = excluded.flag, tags = excluded.tags, below_dl = excluded.below_dl,
    time_corrected = excluded.time_corrected
"""
_UPSERT_LATEST: Final = """
INSERT INTO latest (station_id, parameter, time_ns, measurement, value, unit, flag, tags,
                    data_kind, below_dl, time_corrected)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, parameter) DO UPDATE SET
    time_ns = excluded.time_ns, measurement = excluded.measurement, value = excluded.value,
    unit = excluded.unit, flag = excluded.flag, tags = excluded.tags,
    data_kind = excluded.data_kind, below_dl = excluded.below_dl,
    time_corrected = excluded.time_corrected
WHERE excluded.time_ns >= latest.time_ns
"""
_SELECT_LATEST: Final = f"SELECT {_COLUMNS} FROM latest ORDER BY station_id, parameter"  # noqa: S608 - constants
# Schema 1 -> 3: the key gains data_kind, which a WITHOUT ROWID table can only get by a rewrite
# (into the table as it is now, so it has schema 3's time_corrected column too).
_UPGRADE_V1: Final = (
    "ALTER TABLE readings RENAME TO readings_v1",
    _READINGS_TABLE,
    "INSERT INTO readings (station_id, parameter, time_ns, measurement, value, unit, flag, tags)"
    " SELECT station_id, parameter, time_ns, measurement, value, unit, flag, tags FROM readings_v1",
    "DROP TABLE readings_v1",
    "ALTER TABLE latest ADD COLUMN data_kind TEXT NOT NULL DEFAULT 'realtime'",
    "ALTER TABLE latest ADD COLUMN below_dl INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE latest ADD COLUMN time_corrected INTEGER NOT NULL DEFAULT 0",
)
# Schema 2 -> 3: a column with a default, added in place (no rewrite, however many rows).
_UPGRADE_V2: Final = (
    "ALTER TABLE readings ADD COLUMN time_corrected INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE latest ADD COLUMN time_corrected INTEGER NOT NULL DEFAULT 0",
)


def _upgrade(connection: sqlite3.Connection, path: Path, version: int) -> None:
    """Schema 1 (no data kinds, nothing below the detection limit or corrected) or 2 (nothing
    corrected) to 3, in one transaction."""
    (tables,) = connection.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('readings', 'latest')"
    ).fetchone()
    if version >= SCHEMA_VERSION or tables < 2:
        return  # a file with other tables only: the DDL creates ours
    started = time.monotonic()
    with immediate_transaction(connection):
        for statement in _UPGRADE_V1 if version < 2 else _UPGRADE_V2:
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    (rows,) = connection.execute("SELECT COUNT(*) FROM readings").fetchone()
    log.info(
        "readings_store_upgraded",
        path=str(path),
        schema=SCHEMA_VERSION,
        from_schema=version,
        rows=rows,
        seconds=round(time.monotonic() - started, 3),
    )


SCHEMA: Final = Schema(name="readings", version=SCHEMA_VERSION, ddl=_SCHEMA, upgrade=_upgrade)
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

_Row = tuple[str, str, int, str, float, str, str, str, str, int, int]
_REALTIME: Final = DataKind.REALTIME.value


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
        tag_texts: dict[tuple[tuple[str, str], ...], tuple[str, str]] = {}
        rows: list[_Row] = []
        latest: dict[tuple[str, str], _Row] = {}
        last_tags: tuple[tuple[str, str], ...] | None = None
        tags = kind = ""
        for r in readings:
            if r.tags is not last_tags:  # readings of a message share one tags object
                last_tags = r.tags
                texts = tag_texts.get(last_tags)
                if texts is None:
                    tag_map = dict(last_tags)
                    texts = tag_texts[last_tags] = (
                        orjson.dumps(tag_map).decode(),
                        tag_map.get(DATA_KIND_TAG, _REALTIME),
                    )
                tags, kind = texts
            row = (
                r.station_id,
                r.parameter,
                r.time_ns,
                r.measurement,
                r.value,
                r.unit,
                str(r.flag),
                tags,
                kind,
                1 if r.below_dl else 0,
                1 if r.time_corrected else 0,
            )
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
                raise SinkError(
                    SinkReason.REJECTED, f"{type(exc).__name__}: {exc}", retryable=False
                ) from None
            except (sqlite3.Error, OSError) as exc:
                raise SinkError(SinkReason.STORAGE, f"{self._path}: {exc}", retryable=True) from None

    def check(self) -> None:
        with self._write_lock:
            try:
                connection = self._writer = self._writer or self._connect()
                connection.execute("SELECT 1 FROM readings LIMIT 1").fetchall()
            except (sqlite3.Error, OSError) as exc:
                raise SinkError(SinkReason.STORAGE, f"{self._path}: {exc}", retryable=True) from None

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
        *,
        data_kind: DataKind | None = None,
    ) -> list[Reading]:
        """The newest `limit` matching readings, oldest first; `since_ns` inclusive, `until_ns`
        exclusive; of one kind of value when `data_kind` is given, else of every kind."""
        if limit < 1:
            raise ValueError("limit must be positive")
        conditions: list[str] = []
        values: list[str | int] = []
        for condition, value in (
            ("station_id = ?", station_id),
            ("parameter = ?", parameter),
            ("data_kind = ?", None if data_kind is None else DataKind(data_kind).value),
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
        # Autocommit mode: transactions are explicit (`immediate_transaction` in write).
        return open_database(self._path, SCHEMA, busy_timeout=BUSY_TIMEOUT_SECONDS)


def _reading(row: Sequence[Any]) -> Reading:
    station_id, parameter, time_ns, measurement, value, unit, flag, tags, _kind, below_dl, corrected = row
    return Reading(
        station_id=station_id,
        measurement=measurement,
        parameter=parameter,
        value=value,
        unit=unit,
        time_ns=time_ns,
        flag=DataFlag(flag),
        tags=tuple(sorted(orjson.loads(tags).items())),  # the data_kind tag included
        below_dl=bool(below_dl),
        time_corrected=bool(corrected),
    )
