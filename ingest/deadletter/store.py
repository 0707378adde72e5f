"""`DeadLetterStore`: add rejections within the bounds, read them back, apply the retention."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import orjson
import structlog

from config.sqlite import immediate_transaction, open_database
from config.times import ns
from ingest import telemetry
from ingest.deadletter import retention, write
from ingest.deadletter.config import DeadLetterConfig
from ingest.deadletter.letter import DeadLetter
from ingest.deadletter.schema import BUSY_TIMEOUT_SECONDS, SCHEMA, bound_journal

log = structlog.get_logger(__name__)

# Warn at most this often that rejections are counted but not stored (the issue: once a minute).
WARN_INTERVAL_S: Final = 60.0

_SELECT: Final = (
    "SELECT d.id, d.message_id, d.reason, d.detail, d.station_id, d.parameter, d.replayed_ns,"
    " m.received_ns, m.topic, m.format, m.source_offset, m.omitted"
    " FROM deadletters d JOIN messages m ON m.id = d.message_id"
)


class DeadLetterStore:
    """The SQLite file of dead letters (see the package docstring). Thread-safe."""

    def __init__(
        self,
        path: Path,
        config: DeadLetterConfig | None = None,
        *,
        clock: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config or DeadLetterConfig()
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._db = open_database(path, SCHEMA, busy_timeout=BUSY_TIMEOUT_SECONDS)
        self._journal_bytes = bound_journal(self._db, self._config.max_bytes)
        # Rejections counted only here because the file could not be written (see add_many).
        self._lost: Counter[str] = Counter()
        self._unwarned: Counter[str] = Counter()
        self._warned_at: dict[str, float] = {}
        self._full = write.used_bytes(self._db) >= self._config.max_bytes
        self._rows = self._messages = 0  # kept up to date here, counted again when others wrote
        self._data_version: int | None = None
        self._stopping = threading.Event()
        self._housekeeper: threading.Thread | None = None
        telemetry.DEADLETTERS_QUOTA_BYTES.set(self._config.max_bytes)
        with self._lock:
            self._update_gauges()

    # --- writing -----------------------------------------------------------------------------------
    def add_many(self, letters: Sequence[DeadLetter]) -> None:
        """Count every letter by reason and store them within the bounds, durably, in one transaction.

        The letters of one message come in one call (the processor adds a batch of messages at a
        time). A message with a raw-log offset already counted is skipped, so re-processing after
        a crash changes nothing. Never raises: when the file cannot be written the letters are
        counted in memory, the failure is logged (once a minute) and the caller goes on.
        """
        if not letters:
            return
        try:
            with self._lock:
                added = write.add(
                    self._db,
                    letters,
                    max_rows=self._config.max_rows_per_message,
                    max_bytes=self._config.max_bytes,
                )
        except Exception as exc:  # a broken dead-letter file must not stop ingestion
            self._count_lost(letters, exc)
            return
        try:
            with self._lock:
                self._after_add(added)
        except Exception as exc:  # committed already: only the bookkeeping failed
            log.error("deadletter_metrics_failed", exc_info=exc)

    def _after_add(self, added: write.Added) -> None:
        if added.estimated_bytes > self._journal_bytes:
            # A large transaction left a -wal file as large: SQLite copied it into the database
            # at the commit but would keep the file until the next write. Give it back now.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        self._rows += added.rows
        self._messages += added.messages
        # Full from the first message refused for room until one is stored or room is freed.
        self._full = added.full or (self._full and not added.messages)
        telemetry.DEADLETTERS_STORED.inc(added.rows)
        for (reason, cause), n in added.unstored.items():
            telemetry.DEADLETTERS_UNSTORED.labels(reason, cause).inc(n)
            if cause == "full":
                self._unwarned[reason] += n
        self._update_gauges(counts=False)
        if self._unwarned and self._due("full"):
            log.warning(
                "deadletter_store_full",
                used_bytes=write.used_bytes(self._db),
                max_bytes=self._config.max_bytes,
                not_stored=sum(self._unwarned.values()),
                by_reason=dict(self._unwarned),
                note="rejections are counted by reason, not stored, until the retention frees room",
            )
            self._unwarned.clear()

    def _count_lost(self, letters: Sequence[DeadLetter], exc: Exception) -> None:
        reasons = Counter(str(d.reason) for d in letters)
        with self._lock:
            # Whatever state the failure left, the next transaction starts clean (or reports it).
            with contextlib.suppress(Exception):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            self._lost.update(reasons)
            for reason, n in reasons.items():
                telemetry.DEADLETTERS_UNSTORED.labels(reason, "error").inc(n)
            if self._due("error"):
                log.error(
                    "deadletter_store_failed",
                    lost_total=sum(self._lost.values()),
                    by_reason=dict(self._lost),
                    exc_info=exc,
                )

    def mark_replayed(self, ids: Sequence[int], now_ns: int) -> None:
        with self._lock, immediate_transaction(self._db):
            self._db.executemany(
                "UPDATE deadletters SET replayed_ns = ? WHERE id = ?", [(now_ns, i) for i in ids]
            )

    # --- reading -----------------------------------------------------------------------------------
    def list(
        self, *, reason: str | None = None, limit: int = 100, after_id: int = 0, include_replayed: bool = True
    ) -> list[DeadLetter]:
        """Rows after `after_id` in id order, each with its message's payload."""
        query = _SELECT + " WHERE d.id > ?"
        args: list[object] = [after_id]
        if reason is not None:
            query += " AND d.reason = ?"
            args.append(reason)
        if not include_replayed:
            query += " AND d.replayed_ns IS NULL"
        query += " ORDER BY d.id LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
            payloads = self._payloads({int(r[1]) for r in rows})
        return [_letter(r, payloads) for r in rows]

    def iter_all(self, *, reason: str | None = None, include_replayed: bool = True) -> Iterator[DeadLetter]:
        after = 0
        while batch := self.list(
            reason=reason, after_id=after, limit=1000, include_replayed=include_replayed
        ):
            yield from batch
            after = batch[-1].id or after

    def get(self, letter_id: int) -> DeadLetter | None:
        with self._lock:
            row = self._db.execute(_SELECT + " WHERE d.id = ?", (letter_id,)).fetchone()
            payloads = self._payloads({int(row[1])} if row else set())
        return _letter(row, payloads) if row else None

    def counts_by_reason(self) -> dict[str, int]:
        """Every rejection ever added, by reason: stored, omitted past the row cap, or kept out."""
        with self._lock:
            counts = Counter(dict(self._db.execute("SELECT reason, rejections FROM reason_counts")))
            counts.update(self._lost)
        return dict(counts)

    def count(self) -> int:
        """Rows stored now."""
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM deadletters").fetchone()
        return int(n)

    def status(self) -> dict[str, Any]:
        """Size and fill of the store, and the rejections counted but not stored (for /api/v1/stats)."""
        with self._lock:
            unstored = dict(self._db.execute("SELECT reason, unstored FROM reason_counts WHERE unstored > 0"))
            return {
                "bytes": write.used_bytes(self._db),
                "max_bytes": self._config.max_bytes,
                "messages": self._messages,
                "rows": self._rows,
                "full": self._full,
                "unstored": dict(Counter(unstored) + self._lost),
            }

    # --- retention ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Run `enforce_limits` now and every `housekeeping_interval` on a thread, until `close`."""
        if self._housekeeper is None:
            self._housekeeper = threading.Thread(
                target=self._housekeep, name="deadletter-housekeeping", daemon=True
            )
            self._housekeeper.start()

    def enforce_limits(self, now_ns: int) -> dict[str, int]:
        """Delete what is older than `max_age`, give the room back to the disk, refresh the metrics.

        Cheap when nothing is due (an indexed range query, a checkpoint). The lock is held one
        chunk at a time, so a concurrent `add_many` waits for one chunk at most.
        """
        messages, rows = self.delete_before(now_ns - ns(self._config.max_age))
        self.compact()
        with self._lock:
            self._update_gauges()
            used = write.used_bytes(self._db)
            self._full = self._full and not messages
            telemetry.DEADLETTERS_FULL.set(int(self._full))
        telemetry.DEADLETTERS_PRUNED.inc(messages)
        if messages:
            log.info("deadletter_retention_done", messages=messages, rows=rows, used_bytes=used)
        return {"messages": messages, "rows": rows, "bytes": used}

    def delete_before(self, before_ns: int) -> tuple[int, int]:
        """Delete the messages received before `before_ns` with their rows; (messages, rows) deleted."""
        messages, rows = retention.delete_before(self._db, self._lock, before_ns, self._stopping)
        with self._lock:
            self._messages -= messages
            self._rows -= rows
        return messages, rows

    def compact(self) -> None:
        """Give the pages freed by deletions back to the disk and truncate the -wal file."""
        retention.compact(self._db, self._lock, self._stopping)

    def close(self) -> None:
        self._stopping.set()
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=10)
        with self._lock:
            self._db.close()

    def _housekeep(self) -> None:
        interval = self._config.housekeeping_interval.total_seconds()
        while not self._stopping.is_set():
            try:
                self.enforce_limits(self._clock())
            except Exception as exc:  # next time; ingestion does not depend on it
                log.error("deadletter_housekeeping_failed", exc_info=exc)
            self._stopping.wait(interval)

    # --- helpers (under the lock) ------------------------------------------------------------------
    def _payloads(self, message_ids: set[int]) -> dict[int, bytes]:
        if not message_ids:
            return {}
        found = self._db.execute(
            "SELECT id, payload FROM messages WHERE id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(sorted(message_ids)).decode(),),
        )
        return {int(i): bytes(p) for i, p in found}

    def _update_gauges(self, *, counts: bool = True) -> None:
        # Counting rows scans an index: only at open and after another process (`ecowatch
        # deadletter prune`) changed the file; this one keeps its counts as it writes.
        if counts:
            (version,) = self._db.execute("PRAGMA data_version").fetchone()
            if version != self._data_version:
                (self._rows,) = self._db.execute("SELECT COUNT(*) FROM deadletters").fetchone()
                (self._messages,) = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
                self._data_version = version
        telemetry.DEADLETTERS_BYTES.set(write.used_bytes(self._db))
        telemetry.DEADLETTERS_ROWS.set(self._rows)
        telemetry.DEADLETTERS_MESSAGES.set(self._messages)
        telemetry.DEADLETTERS_FULL.set(int(self._full))

    def _due(self, what: str) -> bool:
        """True at most once per WARN_INTERVAL_S for each kind of warning."""
        now = self._monotonic()
        last = self._warned_at.get(what)
        if last is not None and now - last < WARN_INTERVAL_S:
            return False
        self._warned_at[what] = now
        return True


def _letter(row: tuple[Any, ...], payloads: dict[int, bytes]) -> DeadLetter:
    (
        id_,
        message_id,
        reason,
        detail,
        station_id,
        parameter,
        replayed,
        received,
        topic,
        fmt,
        offset,
        omitted,
    ) = row
    return DeadLetter(
        id=int(id_),
        received_ns=int(received),
        topic=str(topic),
        payload=payloads.get(int(message_id), b""),
        format=None if fmt is None else str(fmt),
        reason=str(reason),
        detail=str(detail),
        station_id=station_id,
        parameter=parameter,
        source_offset=None if offset is None else int(offset),
        replayed_ns=None if replayed is None else int(replayed),
        message_id=int(message_id),
        omitted=int(omitted),
    )
