"""The alert database: alert state, history, windows, silences, assessments and the event outbox.

One SQLite file (e.g. `data_dir/alerts.db`), opened through `config.sqlite.open_database` (WAL
journal mode, `synchronous=FULL`: once a transaction commits, it survives a power cut). The
engine makes every change of one `write` or `tick` in one transaction — the alert rows, their
history, the samples and latest values with the watermarks they imply, and the
`notification_events` rows (the contract with the notifier side, DDL in `alerts.events`) — so a
crash either keeps all of it or none, and a replay of the readings log finds its readings
already held and notifies nothing twice.

Tables: `alerts` (one row per identity, the record as JSON), `history` (every transition with
the values and readings behind it), `latest` and `samples` (the windows; samples pruned to the
retention the rules need), `silences`, `assessments` (one per local day), `daily_values` (the
assessment method's daily value of each station and item per local day, from which the
assessment API makes months, quarters and years; since schema 2), `notification_events`.
One connection, used under the engine's lock; the notifier side opens its own, and the
assessment API reads `daily_values` on connections of its own (`read_daily_values`).

Who owns what in alerts.db (one file, two writers, one schema version):
- This module owns the file: `SCHEMA` is its schema, and every connection to it, the outbox's
  too, opens with it (`open_database(path, SCHEMA, ...)`), so whichever side opens first creates
  the file, its pragmas and the tables above, and `PRAGMA user_version` (`SCHEMA_VERSION`) is
  checked in one place: a file newer than this code is refused, by the engine and the outbox alike.
- `notification_events` is the contract between the two sides: created here (its DDL is in
  `alerts.events`), written by the engine, read by the outbox.
- The outbox owns its own tables (deliveries, outbox_watermark, outbox_messages, receiver_state,
  firing_alerts, rate_slots, rate_pauses): `alerts.outbox.schema.create` makes them and adds the
  columns newer than their first release by looking (`PRAGMA table_info`), which predates the
  version. A change to any table of the file that an older ecowatch could not read raises
  `SCHEMA_VERSION`, with its step in `SCHEMA.upgrade`.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final

import orjson
import structlog

from alerts.events import EVENTS_TABLE_DDL, AlertEvent
from alerts.lifecycle import AlertRecord, AlertState
from alerts.silences import Matcher, Silence
from alerts.windows import Sample
from config.sqlite import Schema, immediate_transaction, open_database
from ingest.model import DataFlag

log = structlog.get_logger(__name__)

# 2: daily_values (the assessment method's daily values). 3: station_values (the alert engine's
# provisional period values, `alerts.station_values`).
SCHEMA_VERSION: Final = 3
_DAILY_VALUES_DDL: Final = """
CREATE TABLE IF NOT EXISTS daily_values (
    day        TEXT NOT NULL,     -- local date, ISO
    station_id TEXT NOT NULL,
    item       TEXT NOT NULL,
    mean       REAL,              -- mean of the valid results; NULL when only over-range (T) ones counted
    dl         REAL NOT NULL,     -- largest detection limit of its below-DL results; 0 when none
    t_max      REAL,              -- largest over-range (T) result; NULL when none
    results    INTEGER NOT NULL,  -- results counted
    PRIMARY KEY (day, station_id, item)
) WITHOUT ROWID;
"""
_STATION_VALUES_DDL: Final = """
CREATE TABLE IF NOT EXISTS station_values (
    station_id TEXT PRIMARY KEY,
    state      TEXT NOT NULL      -- JSON: StationValues.to_json()
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incident_state (
    id    INTEGER PRIMARY KEY CHECK (id = 0),
    state TEXT NOT NULL           -- JSON: IncidentFeed.state()
);
"""
_SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id   TEXT PRIMARY KEY,
    rule       TEXT NOT NULL,
    station_id TEXT,
    state      TEXT NOT NULL,
    record     TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id    TEXT NOT NULL,
    rule        TEXT NOT NULL,
    station_id  TEXT,
    parameter   TEXT,
    transition  TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    at_ns       INTEGER NOT NULL,  -- station time of the transition
    recorded_ns INTEGER NOT NULL,  -- wall clock
    event_key   TEXT,              -- the notification event written with it
    detail      TEXT NOT NULL      -- JSON: summary, values, evidence readings, labels
);
CREATE INDEX IF NOT EXISTS history_by_alert ON history (alert_id, id);
CREATE INDEX IF NOT EXISTS history_by_station ON history (station_id, id);
CREATE INDEX IF NOT EXISTS history_by_recorded ON history (recorded_ns);
CREATE TABLE IF NOT EXISTS latest (
    station_id     TEXT NOT NULL,
    parameter      TEXT NOT NULL,
    time_ns        INTEGER NOT NULL,
    value          REAL NOT NULL,
    flag           TEXT NOT NULL,
    normal_time_ns INTEGER,
    normal_value   REAL,
    PRIMARY KEY (station_id, parameter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples (
    station_id TEXT NOT NULL,
    parameter  TEXT NOT NULL,
    time_ns    INTEGER NOT NULL,
    value      REAL NOT NULL,
    flag       TEXT NOT NULL,
    PRIMARY KEY (station_id, parameter, time_ns)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS silences (
    id         TEXT PRIMARY KEY,
    starts_ns  INTEGER NOT NULL,
    ends_ns    INTEGER NOT NULL,
    record     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assessments (
    day         TEXT PRIMARY KEY,  -- local date, ISO
    assessed_ns INTEGER NOT NULL,
    summary     TEXT NOT NULL
);
"""
    + _DAILY_VALUES_DDL
    + _STATION_VALUES_DDL
    + EVENTS_TABLE_DDL
    + ";"
)
_INSERT_SAMPLE: Final = (
    "INSERT INTO samples (station_id, parameter, time_ns, value, flag) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)
_UPSERT_LATEST: Final = (
    "INSERT INTO latest (station_id, parameter, time_ns, value, flag, normal_time_ns, normal_value)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (station_id, parameter) DO UPDATE SET"
    " time_ns = excluded.time_ns, value = excluded.value, flag = excluded.flag,"
    " normal_time_ns = excluded.normal_time_ns, normal_value = excluded.normal_value"
)
DailyValueRow = tuple[str, str, float | None, float, float | None, int]  # station, item, mean, dl, t_max, n


def _upgrade(connection: sqlite3.Connection, path: Path, version: int) -> None:
    """From 1: the daily_values table, empty (the daily assessment fills it from the next day on).
    From 2: the station_values table, empty (the engine's period values start with the next readings)."""
    if version < 2:
        connection.executescript(_DAILY_VALUES_DDL)
    if version < 3:
        connection.executescript(_STATION_VALUES_DDL)
    log.info("alert_database_upgraded", path=str(path), from_version=version, to_version=SCHEMA_VERSION)


SCHEMA: Final = Schema(name="alert database", version=SCHEMA_VERSION, ddl=_SCHEMA, upgrade=_upgrade)
# Wait this long for the notifier side's lock (it reads and prunes the events table) before failing.
BUSY_TIMEOUT_SECONDS: Final = 5.0


class AlertStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_database(path, SCHEMA, busy_timeout=BUSY_TIMEOUT_SECONDS)

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic, durable unit: everything inside commits together or not at all."""
        return immediate_transaction(self._db)

    def check(self) -> None:
        self._db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._db.close()

    # --- alerts and history ----------------------------------------------------------------------
    def load_alerts(self) -> list[AlertRecord]:
        rows = self._db.execute("SELECT record FROM alerts").fetchall()
        return [_record_from_json(orjson.loads(row[0])) for row in rows]

    def save_alert(self, record: AlertRecord) -> None:
        # Shallow: asdict() deep-copies the snapshots, which costs more than the write.
        data = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        self._db.execute(
            "INSERT INTO alerts (alert_id, rule, station_id, state, record, updated_ns)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO UPDATE SET"
            " state = excluded.state, record = excluded.record, updated_ns = excluded.updated_ns",
            (
                record.alert_id,
                record.rule,
                record.station_id,
                record.state.value,
                orjson.dumps(data),
                record.updated_ns,
            ),
        )

    def add_history(
        self,
        record: AlertRecord,
        *,
        transition: str,
        from_state: AlertState,
        to_state: AlertState,
        at_ns: int,
        recorded_ns: int,
        detail: dict[str, Any],
        event_key: str | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO history (alert_id, rule, station_id, parameter, transition, from_state, to_state,"
            " at_ns, recorded_ns, event_key, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.alert_id,
                record.rule,
                record.station_id,
                record.parameter,
                transition,
                from_state.value,
                to_state.value,
                at_ns,
                recorded_ns,
                event_key,
                orjson.dumps(detail),
            ),
        )

    def add_note(
        self, alert_id: str, rule: str, at_ns: int, recorded_ns: int, detail: dict[str, Any]
    ) -> None:
        """A history record that is no alert transition (the daily assessment)."""
        self._db.execute(
            "INSERT INTO history (alert_id, rule, transition, from_state, to_state, at_ns, recorded_ns,"
            " detail) VALUES (?, ?, 'recorded', 'ok', 'ok', ?, ?, ?)",
            (alert_id, rule, at_ns, recorded_ns, orjson.dumps(detail)),
        )

    def history(
        self,
        *,
        alert_id: str | None = None,
        station_id: str | None = None,
        rule: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Transitions, newest first, with optional filters (None: any)."""
        rows = self._db.execute(
            "SELECT id, alert_id, rule, station_id, parameter, transition, from_state, to_state, at_ns,"
            " recorded_ns, event_key, detail FROM history"
            " WHERE (?1 IS NULL OR alert_id = ?1) AND (?2 IS NULL OR station_id = ?2)"
            " AND (?3 IS NULL OR rule = ?3) AND (?4 IS NULL OR id < ?4)"
            " ORDER BY id DESC LIMIT ?5",
            (alert_id, station_id, rule, before_id, limit),
        ).fetchall()
        keys = ("id", "alert_id", "rule", "station_id", "parameter", "transition", "from_state", "to_state")
        out = []
        for row in rows:
            item: dict[str, Any] = dict(zip(keys, row[:8], strict=True))
            item.update(at_ns=row[8], recorded_ns=row[9], event_key=row[10], detail=orjson.loads(row[11]))
            out.append(item)
        return out

    # --- notification events ---------------------------------------------------------------------
    def add_event(self, event: AlertEvent, created_ns: int) -> bool:
        """Write a notification event; False when its key is already there (nothing written)."""
        cursor = self._db.execute(
            "INSERT INTO notification_events (key, created_ns, event) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO NOTHING",
            (event.key, created_ns, orjson.dumps(event.to_json()).decode()),
        )
        return cursor.rowcount == 1

    def events(self, after_id: int = 0, limit: int = 1000) -> list[tuple[int, AlertEvent]]:
        rows = self._db.execute(
            "SELECT id, event FROM notification_events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        ).fetchall()
        return [(row[0], AlertEvent.from_json(orjson.loads(row[1]))) for row in rows]

    # --- period values ---------------------------------------------------------------------------
    def save_station_values(self, states: Iterable[tuple[str, dict[str, Any]]]) -> None:
        self._db.executemany(
            "INSERT INTO station_values (station_id, state) VALUES (?, ?)"
            " ON CONFLICT (station_id) DO UPDATE SET state = excluded.state",
            ((station_id, orjson.dumps(state).decode()) for station_id, state in states),
        )

    def save_incident_state(self, state: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO incident_state (id, state) VALUES (0, ?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            (orjson.dumps(state).decode(),),
        )

    def load_incident_state(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT state FROM incident_state WHERE id = 0").fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def load_station_values(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for station_id, state in self._db.execute("SELECT station_id, state FROM station_values"):
            yield station_id, orjson.loads(state)

    # --- windows ---------------------------------------------------------------------------------
    def save_sample(self, station_id: str, parameter: str, sample: Sample) -> None:
        self.save_samples([(station_id, parameter, sample)])

    def save_samples(self, samples: Iterable[tuple[str, str, Sample]]) -> None:
        """`save_sample` for many, in one statement."""
        self._db.executemany(
            _INSERT_SAMPLE, ((sid, code, s.time_ns, s.value, s.flag.value) for sid, code, s in samples)
        )

    def save_latest_many(self, latest: Iterable[tuple[str, str, Sample, Sample | None]]) -> None:
        """`save_latest` for many, in one statement."""
        self._db.executemany(
            _UPSERT_LATEST,
            (
                (
                    station_id,
                    parameter,
                    sample.time_ns,
                    sample.value,
                    sample.flag.value,
                    None if normal is None else normal.time_ns,
                    None if normal is None else normal.value,
                )
                for station_id, parameter, sample, normal in latest
            ),
        )

    def save_latest(self, station_id: str, parameter: str, sample: Sample, normal: Sample | None) -> None:
        self.save_latest_many([(station_id, parameter, sample, normal)])

    def load_latest(self) -> Iterator[tuple[str, str, Sample, Sample | None]]:
        for station_id, parameter, time_ns, value, flag, normal_ns, normal_value in self._db.execute(
            "SELECT station_id, parameter, time_ns, value, flag, normal_time_ns, normal_value FROM latest"
        ):
            normal = None if normal_ns is None else Sample(normal_ns, normal_value, DataFlag.NORMAL)
            yield station_id, parameter, Sample(time_ns, value, DataFlag(flag)), normal

    def load_samples(self, within_ns: int | None = None) -> Iterator[tuple[str, str, Sample]]:
        """Samples by station, parameter and time.

        With `within_ns`, only those at most that much older than their parameter's latest value
        (what the windows keep; the daily assessment reads the rest with `samples_between`).
        """
        flags = {flag.value: flag for flag in DataFlag}
        rows = self._db.execute(
            "SELECT s.station_id, s.parameter, s.time_ns, s.value, s.flag FROM samples AS s"
            " LEFT JOIN latest AS l ON l.station_id = s.station_id AND l.parameter = s.parameter"
            " WHERE ?1 IS NULL OR l.time_ns IS NULL OR s.time_ns >= l.time_ns - ?1"
            " ORDER BY s.station_id, s.parameter, s.time_ns",
            (within_ns,),
        )
        for station_id, parameter, time_ns, value, flag in rows:
            yield station_id, parameter, Sample(time_ns, value, flags[flag])

    def samples_between(self, start_ns: int, end_ns: int) -> Iterator[tuple[str, str, Sample]]:
        """Samples with start <= time < end, for the daily assessment."""
        for station_id, parameter, time_ns, value, flag in self._db.execute(
            "SELECT station_id, parameter, time_ns, value, flag FROM samples"
            " WHERE time_ns >= ? AND time_ns < ?",
            (start_ns, end_ns),
        ):
            yield station_id, parameter, Sample(time_ns, value, DataFlag(flag))

    # --- silences --------------------------------------------------------------------------------
    def load_silences(self) -> list[Silence]:
        rows = self._db.execute("SELECT record FROM silences ORDER BY starts_ns").fetchall()
        return [_silence_from_json(orjson.loads(row[0])) for row in rows]

    def save_silence(self, silence: Silence) -> None:
        data = dataclasses.asdict(silence)
        self._db.execute(
            "INSERT INTO silences (id, starts_ns, ends_ns, record) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET starts_ns = excluded.starts_ns, ends_ns = excluded.ends_ns,"
            " record = excluded.record",
            (silence.id, silence.starts_ns, silence.ends_ns, orjson.dumps(data)),
        )

    # --- assessments and housekeeping ------------------------------------------------------------
    def assessed_days(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT day FROM assessments")}

    def save_assessment(self, day: str, assessed_ns: int, summary: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO assessments (day, assessed_ns, summary) VALUES (?, ?, ?)"
            " ON CONFLICT (day) DO NOTHING",
            (day, assessed_ns, orjson.dumps(summary)),
        )

    def assessment(self, day: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT summary FROM assessments WHERE day = ?", (day,)).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def save_daily_values(self, day: str, rows: Iterable[DailyValueRow]) -> None:
        """The day's daily values, replacing any stored for it."""
        self._db.execute("DELETE FROM daily_values WHERE day = ?", (day,))
        self._db.executemany(
            "INSERT INTO daily_values (day, station_id, item, mean, dl, t_max, results)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((day, *row) for row in rows),
        )

    def prune_daily_values(self, before_day: str) -> int:
        """Delete the daily values of days before `before_day`; how many rows went."""
        return self._db.execute("DELETE FROM daily_values WHERE day < ?", (before_day,)).rowcount

    def prune(self, *, history_before_ns: int, samples_before_ns: dict[str, int]) -> dict[str, int]:
        """Delete history, assessments and silences older than the cut-off, and old samples."""
        counts = {
            "history": self._db.execute(
                "DELETE FROM history WHERE recorded_ns < ?", (history_before_ns,)
            ).rowcount,
            "assessments": self._db.execute(
                "DELETE FROM assessments WHERE assessed_ns < ?", (history_before_ns,)
            ).rowcount,
            "silences": self._db.execute(
                "DELETE FROM silences WHERE ends_ns < ?", (history_before_ns,)
            ).rowcount,
        }
        samples = 0
        for station_id, before_ns in samples_before_ns.items():
            samples += self._db.execute(
                "DELETE FROM samples WHERE station_id = ? AND time_ns < ?", (station_id, before_ns)
            ).rowcount
        counts["samples"] = samples
        return counts


def read_daily_values(path: Path, first_day: str, end_day: str) -> Iterator[tuple[str, DailyValueRow]]:
    """(day, row) of the days [first_day, end_day), day by day, on a read-only connection of its own.

    For the assessment API: it reads while the engine writes (WAL), without the engine's lock.
    Nothing when the file does not exist yet.
    """
    if not path.exists():
        return
    connection = open_database(path, SCHEMA, busy_timeout=BUSY_TIMEOUT_SECONDS, read_only=True)
    try:
        for day, *row in connection.execute(
            "SELECT day, station_id, item, mean, dl, t_max, results FROM daily_values"
            " WHERE day >= ? AND day < ? ORDER BY day",
            (first_day, end_day),
        ):
            yield day, (row[0], row[1], row[2], row[3], row[4], row[5])
    finally:
        connection.close()


def _record_from_json(data: dict[str, Any]) -> AlertRecord:
    data["state"] = AlertState(data["state"])
    return AlertRecord(**data)


def _silence_from_json(data: dict[str, Any]) -> Silence:
    data["matchers"] = tuple(Matcher(**m) for m in data["matchers"])
    return Silence(**data)
