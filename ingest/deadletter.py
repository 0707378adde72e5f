"""The dead-letter store: every rejection, durably, with the raw payload and a countable reason.

An SQLite file beside the write-ahead logs. One row per rejection: a whole message that could not
be used, or one reading of a message whose other readings went on (then `station_id` and
`parameter` say which). Rows keep the raw payload and topic so `ecowatch deadletter replay` can
re-inject them after the config or the registry was fixed; a replayed row is marked, not deleted,
so its history stays visible.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import RejectReason

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deadletters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ns INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    format TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    station_id TEXT,
    parameter TEXT,
    source_offset INTEGER,
    replayed_ns INTEGER
);
CREATE INDEX IF NOT EXISTS deadletters_reason ON deadletters (reason);
CREATE INDEX IF NOT EXISTS deadletters_received ON deadletters (received_ns);
-- A raw-log record is processed at least once; this makes re-processing after a crash idempotent.
CREATE UNIQUE INDEX IF NOT EXISTS deadletters_once
    ON deadletters (source_offset, reason, IFNULL(station_id, ''), IFNULL(parameter, ''), detail)
    WHERE source_offset IS NOT NULL;
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_ns: int
    topic: str
    payload: bytes
    reason: RejectReason | str
    detail: str
    format: str | None = None
    station_id: str | None = None
    parameter: str | None = None
    source_offset: int | None = None
    id: int | None = None
    replayed_ns: int | None = None

    def to_json(self, *, with_payload: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "received_ns": self.received_ns,
            "topic": self.topic,
            "format": self.format,
            "reason": str(self.reason),
            "detail": self.detail,
            "station_id": self.station_id,
            "parameter": self.parameter,
            "replayed_ns": self.replayed_ns,
        }
        if with_payload:
            try:
                out["payload"] = self.payload.decode("utf-8")
            except UnicodeDecodeError:
                out["payload_hex"] = self.payload.hex()
        return out


class DeadLetterStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a dead letter is the only copy of a rejected message once the raw log moves on.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def add_many(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        rows = [
            (
                d.received_ns,
                d.topic,
                d.payload,
                d.format,
                str(d.reason),
                d.detail[:2000],
                d.station_id,
                d.parameter,
                d.source_offset,
            )
            for d in letters
        ]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO deadletters (received_ns, topic, payload, format, reason, detail,"
                " station_id, parameter, source_offset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")

    def list(
        self, *, reason: str | None = None, limit: int = 100, after_id: int = 0, include_replayed: bool = True
    ) -> list[DeadLetter]:
        query = "SELECT * FROM deadletters WHERE id > ?"
        args: list[object] = [after_id]
        if reason is not None:
            query += " AND reason = ?"
            args.append(reason)
        if not include_replayed:
            query += " AND replayed_ns IS NULL"
        query += " ORDER BY id LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [_row(r) for r in rows]

    def iter_all(self, *, reason: str | None = None, include_replayed: bool = True) -> Iterator[DeadLetter]:
        after = 0
        while batch := self.list(
            reason=reason, after_id=after, limit=1000, include_replayed=include_replayed
        ):
            yield from batch
            after = batch[-1].id or after

    def get(self, letter_id: int) -> DeadLetter | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM deadletters WHERE id = ?", (letter_id,)).fetchone()
        return _row(row) if row else None

    def counts_by_reason(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT reason, COUNT(*) FROM deadletters GROUP BY reason").fetchall()
        return dict(rows)

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM deadletters").fetchone()
        return int(n)

    def mark_replayed(self, ids: Sequence[int], now_ns: int) -> None:
        with self._lock:
            self._db.executemany(
                "UPDATE deadletters SET replayed_ns = ? WHERE id = ?", [(now_ns, i) for i in ids]
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row(row: tuple[object, ...]) -> DeadLetter:
    (id_, received_ns, topic, payload, fmt, reason, detail, station_id, parameter, offset, replayed) = row
    return DeadLetter(
        id=int(id_),  # type: ignore[call-overload]
        received_ns=int(received_ns),  # type: ignore[call-overload]
        topic=str(topic),
        payload=bytes(payload),  # type: ignore[call-overload]
        format=fmt if fmt is None else str(fmt),
        reason=str(reason),
        detail=str(detail),
        station_id=None if station_id is None else str(station_id),
        parameter=None if parameter is None else str(parameter),
        source_offset=None if offset is None else int(offset),  # type: ignore[call-overload]
        replayed_ns=None if replayed is None else int(replayed),  # type: ignore[call-overload]
    )
