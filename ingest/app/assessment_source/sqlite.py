"""Results from the SQLite sink's readings.db, read-only, one query per chunk and batch of stations.

The readings table's primary key is (station_id, parameter, data_kind, time_ns) (schema 2; without
data_kind in schema 1), so the query drives it: the batch's stations and the request's items are
two `json_each` lists crossed and joined on the key, which makes every (station, item, kind) a
range scan of the chunk's times, in key order, without a scan of the table or its time index. The
rows come out as the core's 6-tuples `(station_id, time_ns, parameter, value, flag, below_dl)`,
straight from the cursor: at several million rows a month, Python touches each row once, in
`daily_values`.

Optional columns are read where the sink writes them (schema 2): `below_dl` (else every value is
a measurement) and `data_kind` (else the `data_kind` key of the `tags` JSON, else real-time). The
kinds are chosen in SQL: a row of a kind other than the first configured one is kept only when no
row of a preferred kind exists for its station and item in the chunk (a lookup on the key, made
for those rows alone). With `data_kind` in the key each kind is a query of its own, so the
common rows, the real-time ones, cost a seek and nothing more.

A connection per `results` call, opened read-only with the sink's schema (a file of a newer
schema is refused, not misread); WAL lets it read the last committed batch while the sink writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from alerts.assessment_method.source import ResultRow, ResultsRequest, SourceError
from config.sqlite import open_database
from ingest.app.assessment_source.common import progress_bar, short
from ingest.sinks.sqlite import SCHEMA

# Stations per query: large enough that per-query costs vanish, small enough for a lively bar.
STATION_BATCH: Final = 500
BUSY_TIMEOUT_SECONDS: Final = 5.0

_SELECT: Final = """
SELECT r.station_id, r.time_ns, r.parameter, r.value, r.flag, {below}
FROM json_each(:stations) AS s CROSS JOIN json_each(:items) AS p CROSS JOIN readings AS r
WHERE r.station_id = s.value AND r.parameter = p.value AND r.time_ns >= :since AND r.time_ns < :until
"""
# Rank of a row's kind in the configured list (NULL: a kind not read); {row} is the table alias.
_KIND_IN_TAGS: Final = (
    "CASE WHEN instr({row}.tags, '\"data_kind\"') THEN json_extract({row}.tags, '$.data_kind') END"
)
_PREFERRED_EXISTS: Final = """
EXISTS (SELECT 1 FROM readings AS b WHERE b.station_id = r.station_id AND b.parameter = r.parameter
        AND {condition} AND b.time_ns >= :since AND b.time_ns < :until)
"""


class SQLiteResults:
    def __init__(self, path: Path, *, kinds: Sequence[str]) -> None:
        self.path = path
        self.kinds = tuple(kinds)

    @property
    def description(self) -> str:
        return f"sqlite {self.path}"

    @property
    def notes(self) -> Sequence[str]:
        return ()

    def results(self, request: ResultsRequest) -> Iterator[ResultRow]:
        if not self.path.exists():
            raise SourceError(f"{self.description}: no such file (nothing stored yet, or another path)")
        try:
            connection = open_database(self.path, SCHEMA, busy_timeout=BUSY_TIMEOUT_SECONDS, read_only=True)
        except sqlite3.Error as exc:
            raise SourceError(f"{self.description}: {short(exc)}") from None
        try:
            yield from self._read(connection, request)
        except sqlite3.Error as exc:
            raise SourceError(f"{self.description}: {short(exc)}") from None
        finally:
            connection.close()

    def close(self) -> None:
        return None  # a connection per call: nothing held

    def statements(self, columns: set[str]) -> list[str]:
        """The queries for a table with these columns, run in turn (public for the tests).

        With a `data_kind` column: one query per kind, each a seek on the key; the rows of the
        first kind are kept as they come, those of a later kind only when no preferred kind has a
        row of their station and item in the chunk. Without (kinds in the tags): one query that
        ranks each row's kind.
        """
        below = "r.below_dl" if "below_dl" in columns else "0"
        sql = _SELECT.format(below=below)
        if "data_kind" in columns:
            out = [sql + "AND r.data_kind = :kind0"]
            for i in range(1, len(self.kinds)):
                preferred = ", ".join(f":kind{j}" for j in range(i))
                condition = f"b.data_kind IN ({preferred})"
                out.append(
                    sql
                    + f"AND r.data_kind = :kind{i} AND NOT "
                    + _PREFERRED_EXISTS.format(condition=condition)
                )
            return out
        ranks = " ".join(f"WHEN :kind{i} THEN {i}" for i in range(len(self.kinds)))
        rank = f"(CASE COALESCE(NULLIF({_KIND_IN_TAGS}, ''), 'realtime') {ranks} END)"
        rank_r, rank_b = rank.format(row="r"), rank.format(row="b")
        preferred_exists = _PREFERRED_EXISTS.format(condition=f"{rank_b} < {rank_r}")
        return [sql + f"AND {rank_r} IS NOT NULL AND ({rank_r} = 0 OR NOT {preferred_exists})"]

    def _read(self, connection: sqlite3.Connection, request: ResultsRequest) -> Iterator[ResultRow]:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(readings)")}
        if not columns:
            return  # the sink creates the table with its first batch
        queries = self.statements(columns)
        chunks = request.chunks()
        ids = list(request.station_ids)
        batches = [json.dumps(ids[i : i + STATION_BATCH]) for i in range(0, len(ids), STATION_BATCH)]
        bound: dict[str, object] = {f"kind{i}": kind for i, kind in enumerate(self.kinds)}
        bound["items"] = json.dumps(list(request.items))
        with progress_bar(request, f"sqlite {self.path.name}", len(chunks) * len(batches)) as bar:
            for chunk in chunks:
                bar.set_postfix_str(chunk.label)
                for batch in batches:
                    bound.update(stations=batch, since=chunk.start_ns, until=chunk.end_ns)
                    for sql in queries:
                        yield from connection.execute(sql, bound)
                    bar.update(1)
