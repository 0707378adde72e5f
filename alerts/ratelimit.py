"""Rate limits: a sliding window and a pause per target, kept in SQLite; digests of what waits.

Chat robots throttle, and punish: DingTalk's custom robot takes 20 messages a minute and, past
that, answers errcode 130101 and refuses everything for ten minutes; WeCom's group robot takes
20 a minute and answers 45009. An operator sent fifty messages at once reads none of them either.

A receiver with a `rate_limit` of `messages` per `per` never has more than `messages` requests
in any window of length `per` (a sliding window, not a bucket that refills: a bucket of 20 that
refills continuously lets 21 requests through in 3 s after a full minute's pause). Each request
is written down as a *slot* before it goes out, dated when the service may have counted it at
the latest: the end of its timeout until the answer comes, then the answer's time. A request
may therefore go out only when fewer than `messages` slots are dated `now - per` or later, and the
service, counting arrivals, never sees more than `messages` within `per`, however slow the
network. A penalty answer (DingTalk 130101, WeCom 45009, HTTP 429 with Retry-After) *pauses*
the target until the answer's time plus the penalty; nothing goes to it before.

The window and the pause belong to the *target* (`target_id`: a hash of the endpoint and its
credential), not to the receiver: two receivers configured with the same robot share one
window, across the outbox's worker threads. Both live in the outbox's database, so a restart
(or kill -9) honours the last minute's requests and a pause still running.

When more deliveries are due than the window has room for, they go together as one digest (a
message listing them, up to `max_digest_events`), which the channel may split into several
messages to fit its size limit (`alerts.templates.render_parts`); each message takes a slot.
Nothing is dropped, and nothing waits longer than the next free slot.

Example:
    notify:
      receivers:
        - type: dingtalk
          name: duty-room
          access_token: "${DINGTALK_TOKEN}"
          rate_limit: {messages: 10, per: PT1M}
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from datetime import timedelta
from typing import Final, TypeVar

from pydantic import Field

from config.sqlite import immediate_transaction
from config.times import ns
from config.types import StrictModel

T = TypeVar("T")

RATE_LIMIT_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS rate_slots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target TEXT NOT NULL,
        at_ns INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS rate_slots_target ON rate_slots (target, at_ns)",
    """CREATE TABLE IF NOT EXISTS rate_pauses (
        target TEXT PRIMARY KEY,
        until_ns INTEGER NOT NULL,
        reason TEXT NOT NULL
    )""",
)
# Slots older than this are pruned; no window is configured longer (see RateLimitConfig.per).
MAX_WINDOW: Final = timedelta(days=1)


class RateLimitConfig(StrictModel):
    messages: int = Field(gt=0, le=100_000, description="Most requests in any window of length `per`.")
    per: timedelta = Field(
        gt=timedelta(0), le=MAX_WINDOW, description="The sliding window `messages` refers to."
    )

    def exceeds(self, other: RateLimitConfig) -> bool:
        """Whether this lets through more than `other` does, in a burst or in the long run."""
        return self.messages > other.messages or self.messages * ns(other.per) > other.messages * ns(self.per)


def target_id(kind: str, *parts: str) -> str:
    """The identity a window and a pause are kept under: no secret, the same for the same robot."""
    digest = hashlib.sha256("\x00".join((kind, *parts)).encode()).hexdigest()
    return f"{kind}:{digest[:24]}"


def acquire(
    conn: sqlite3.Connection, target: str, limit: RateLimitConfig | None, now_ns: int, latest_ns: int
) -> int | None:
    """Take a slot for a request starting at `now_ns`: its id, or None if the target is paused or
    its window is full (`wait_ns` says for how long). The slot is dated `latest_ns` (the request's
    timeout) until `settle` dates it with the answer."""
    with immediate_transaction(conn):
        if _paused_until(conn, target) > now_ns:
            return None
        if limit is not None and _in_window(conn, target, limit, now_ns) >= limit.messages:
            return None
        cursor = conn.execute("INSERT INTO rate_slots (target, at_ns) VALUES (?, ?)", (target, latest_ns))
        return cursor.lastrowid


def settle(conn: sqlite3.Connection, slot: int, answered_ns: int) -> None:
    """Date a slot with the time its answer (or the failure) came."""
    with immediate_transaction(conn):
        conn.execute("UPDATE rate_slots SET at_ns = ? WHERE id = ?", (answered_ns, slot))


def pause(conn: sqlite3.Connection, target: str, until_ns: int, reason: str) -> None:
    """Send nothing to `target` before `until_ns` (a pause already running longer is kept)."""
    with immediate_transaction(conn):
        conn.execute(
            "INSERT INTO rate_pauses (target, until_ns, reason) VALUES (?, ?, ?)"
            " ON CONFLICT (target) DO UPDATE SET until_ns = excluded.until_ns, reason = excluded.reason"
            " WHERE excluded.until_ns > rate_pauses.until_ns",
            (target, until_ns, reason),
        )


def paused_until(conn: sqlite3.Connection, target: str) -> int:
    """The end of the target's pause in ns (0 when it has none)."""
    return _paused_until(conn, target)


def available(
    conn: sqlite3.Connection, target: str, limit: RateLimitConfig | None, now_ns: int
) -> int | None:
    """Requests the target takes now: 0 while paused, None when it has no limit."""
    if _paused_until(conn, target) > now_ns:
        return 0
    if limit is None:
        return None
    return max(0, limit.messages - _in_window(conn, target, limit, now_ns))


def wait_ns(conn: sqlite3.Connection, target: str, limit: RateLimitConfig | None, now_ns: int) -> int:
    """Ns until the target takes a request (0 when it takes one now)."""
    wait = max(0, _paused_until(conn, target) - now_ns)
    if limit is None:
        return wait
    per_ns = ns(limit.per)
    stamps = [
        at
        for (at,) in conn.execute(
            "SELECT at_ns FROM rate_slots WHERE target = ? AND at_ns >= ? ORDER BY at_ns DESC",
            (target, now_ns - per_ns),
        )
    ]
    if len(stamps) >= limit.messages:
        # Free once the `messages`-th most recent slot has left the window.
        wait = max(wait, stamps[limit.messages - 1] + per_ns - now_ns + 1)
    return wait


def prune(conn: sqlite3.Connection, now_ns: int) -> None:
    """Forget slots no window reaches and pauses that are over."""
    with immediate_transaction(conn):
        conn.execute("DELETE FROM rate_slots WHERE at_ns < ?", (now_ns - ns(MAX_WINDOW),))
        conn.execute("DELETE FROM rate_pauses WHERE until_ns < ?", (now_ns,))


def plan(due: Sequence[T], slots: int | None, max_digest: int) -> list[list[T]]:
    """The messages to send now: one per due item if they fit in `slots` (None: no limit), else
    one digest of the first `max_digest` items; nothing without a slot."""
    if not due:
        return []
    if slots is None or len(due) <= slots:
        return [[item] for item in due]
    if slots < 1:
        return []
    return [list(due[:max_digest])]


def _paused_until(conn: sqlite3.Connection, target: str) -> int:
    row = conn.execute("SELECT until_ns FROM rate_pauses WHERE target = ?", (target,)).fetchone()
    return int(row[0]) if row else 0


def _in_window(conn: sqlite3.Connection, target: str, limit: RateLimitConfig, now_ns: int) -> int:
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM rate_slots WHERE target = ? AND at_ns >= ?", (target, now_ns - ns(limit.per))
    ).fetchone()
    return int(count)
