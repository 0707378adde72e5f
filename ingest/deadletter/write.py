"""Adding rejections within the bounds: each message once, rows capped, the quota kept, all counted."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from config.sqlite import immediate_transaction
from ingest.deadletter.letter import DeadLetter

# Re-processing after a crash repeats at most the batches in flight (a few thousand raw-log
# records); an offset further below the highest one counted means a raw log started afresh.
REPROCESS_WINDOW: Final = 2**20
# Stored text is cut to these lengths: a hostile message can carry a station id as long as itself.
DETAIL_CHARS: Final = 2000
NAME_CHARS: Final = 200
# Bytes a stored message and a row take beyond their payload and text (record, ids, index
# entries): an estimate on the high side; when it says a message does not fit, the pages decide.
_MESSAGE_OVERHEAD: Final = 128
_ROW_OVERHEAD: Final = 96
# SQLite's default page size, which the store keeps.
_PAGE_BYTES: Final = 4096


@dataclass(slots=True)
class Added:
    """What one `add` did: what it stored, what it counted only (by reason and cause), whether it
    refused a message for room."""

    rows: int = 0
    messages: int = 0
    unstored: Counter[tuple[str, str]] = field(default_factory=Counter)
    full: bool = False
    estimated_bytes: int = 0


def used_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the pages in use: what the file holds, free pages not counted."""
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    (free,) = db.execute("PRAGMA freelist_count").fetchone()
    (size,) = db.execute("PRAGMA page_size").fetchone()
    return int(pages - free) * int(size)


def add(db: sqlite3.Connection, letters: Sequence[DeadLetter], *, max_rows: int, max_bytes: int) -> Added:
    """Count `letters` by reason and store what the bounds allow, in one transaction.

    Inserts are batched (two `executemany`), and the pages are measured at the start and again
    only when the estimate says a message does not fit, so a batch of small rejected messages
    costs little more than it did when each rejection was one row.
    """
    with immediate_transaction(db):
        batch = _Batch(db, max_bytes)
        through = _counted_through(db)
        messages = by_message(letters)
        stored = _stored_offsets(db, [m[0].source_offset for m in messages])
        highest: int | None = None
        for message in messages:
            offset = message[0].source_offset
            if offset is not None:
                if through - REPROCESS_WINDOW < offset <= through or offset in stored:
                    continue  # counted before a crash took the processor's offset back
                highest = offset if highest is None else max(highest, offset)
            batch.add(message, pick(message, max_rows))
        batch.flush()
        db.executemany(
            "INSERT INTO reason_counts (reason, rejections, unstored) VALUES (?, ?, ?)"
            " ON CONFLICT (reason) DO UPDATE SET rejections = rejections + excluded.rejections,"
            " unstored = unstored + excluded.unstored",
            batch.counts(),
        )
        if highest is not None and (highest > through or highest <= through - REPROCESS_WINDOW):
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('counted_through', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (highest,),
            )
    return batch.added


class _Batch:
    """The messages and rows of one `add`, inserted together, and what they count."""

    def __init__(self, db: sqlite3.Connection, max_bytes: int) -> None:
        self._db = db
        self._max_bytes = max_bytes
        self._room = max_bytes - used_bytes(db)
        (self._next_id,) = db.execute("SELECT IFNULL(MAX(id), 0) + 1 FROM messages").fetchone()
        self._messages: list[tuple[object, ...]] = []
        self._rows: list[tuple[object, ...]] = []
        self._totals: dict[str, int] = {}
        self.added = Added(full=self._room <= 0)

    def add(self, message: list[DeadLetter], kept: list[DeadLetter]) -> None:
        head = message[0]
        reasons: dict[str, int] = {}
        for d in message:
            reason = str(d.reason)
            reasons[reason] = reasons.get(reason, 0) + 1
        totals = self._totals
        for reason, n in reasons.items():
            totals[reason] = totals.get(reason, 0) + n
        cost = _cost(head, kept)
        if not self.added.full and cost > self._room:
            self.flush()  # the estimate is high on purpose: measure before refusing
            self._room = self._max_bytes - used_bytes(self._db)
        if self.added.full or cost > self._room:
            # Full: count, store nothing (not even the rows), until the retention frees room.
            self.added.full = True
            self.added.unstored.update({(r, "full"): n for r, n in reasons.items()})
            return
        message_id = self._next_id
        self._next_id += 1
        self._messages.append(
            (
                message_id,
                head.received_ns,
                _text(head.topic),
                _name(head.format),
                head.payload,
                head.source_offset,
                len(message),
                len(message) - len(kept),
            )
        )
        self._rows.extend(
            (
                message_id,
                str(d.reason),
                _text(d.detail, DETAIL_CHARS),
                _name(d.station_id),
                _name(d.parameter),
            )
            for d in kept
        )
        if len(kept) < len(message):
            omitted = Counter(reasons) - Counter(str(d.reason) for d in kept)
            self.added.unstored.update({(r, "row_cap"): n for r, n in omitted.items()})
        self.added.rows += len(kept)
        self.added.messages += 1
        self.added.estimated_bytes += cost
        self._room -= cost

    def flush(self) -> None:
        if self._messages:
            self._db.executemany(
                "INSERT INTO messages (id, received_ns, topic, format, payload, source_offset, rejections,"
                " omitted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                self._messages,
            )
            self._messages.clear()
        if self._rows:
            self._db.executemany(
                "INSERT INTO deadletters (message_id, reason, detail, station_id, parameter)"
                " VALUES (?, ?, ?, ?, ?)",
                self._rows,
            )
            self._rows.clear()

    def counts(self) -> list[tuple[str, int, int]]:
        """(reason, rejections, unstored) of this batch, for `reason_counts`."""
        unstored: Counter[str] = Counter()
        for (reason, _cause), n in self.added.unstored.items():
            unstored[reason] += n
        return [(reason, n, unstored[reason]) for reason, n in self._totals.items()]


def by_message(letters: Sequence[DeadLetter]) -> list[list[DeadLetter]]:
    """The letters grouped by message: same raw-log offset, else same topic and payload."""
    groups: dict[tuple[object, ...], list[DeadLetter]] = {}
    for d in letters:
        key = (d.source_offset,) if d.source_offset is not None else (d.topic, d.payload)
        groups.setdefault(key, []).append(d)
    return list(groups.values())


def pick(letters: list[DeadLetter], limit: int) -> list[DeadLetter]:
    """At most `limit` letters, the first of each reason among them, in their order."""
    if len(letters) <= limit:
        return letters
    chosen: set[int] = set()
    seen: set[str] = set()
    for index, d in enumerate(letters):
        if str(d.reason) not in seen and len(chosen) < limit:
            seen.add(str(d.reason))
            chosen.add(index)
    index = 0
    while len(chosen) < limit:
        chosen.add(index)
        index += 1
    return [letters[i] for i in sorted(chosen)]


def _stored_offsets(db: sqlite3.Connection, offsets: list[int | None]) -> set[int]:
    """Those of `offsets` that a stored message has (from before the raw log was started afresh)."""
    wanted = [o for o in offsets if o is not None]
    if not wanted:
        return set()
    found = db.execute(
        "SELECT source_offset FROM messages WHERE source_offset IN (SELECT value FROM json_each(?))",
        (orjson.dumps(wanted).decode(),),
    )
    return {int(o) for (o,) in found}


def _counted_through(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'counted_through'").fetchone()
    return -1 if row is None else int(row[0])


def _cost(head: DeadLetter, kept: list[DeadLetter]) -> int:
    """Bytes a message and its kept rows will take, near enough for the quota."""
    rows = sum(
        _ROW_OVERHEAD
        + min(len(d.detail), DETAIL_CHARS)
        + min(len(d.station_id or ""), NAME_CHARS)
        + min(len(d.parameter or ""), NAME_CHARS)
        for d in kept
    )
    payload = len(head.payload)
    if payload > _PAGE_BYTES // 4:
        # Large payloads spill onto overflow pages and leave their leaf page mostly empty.
        payload = (payload // _PAGE_BYTES + 2) * _PAGE_BYTES
    return _MESSAGE_OVERHEAD + payload + len(head.topic) + rows


def _text(value: str, limit: int | None = None) -> str:
    """`value` cut to `limit` and encodable (a lone surrogate would fail the insert)."""
    cut = value if limit is None else value[:limit]
    return cut if cut.isascii() else cut.encode("utf-8", "replace").decode("utf-8")


def _name(value: str | None) -> str | None:
    return None if value is None else _text(value, NAME_CHARS)
