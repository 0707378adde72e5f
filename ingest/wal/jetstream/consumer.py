"""`JetStreamConsumer`: one named consumer of a JetStream log, the log seam's `Consumer`.

Reading goes through an ephemeral pull consumer (no acks, in memory, one replica) that the
consumer creates at its position and replaces on a `seek` outside what it holds, after a
reconnect, or when the server lost it (a node died: the pull request answers 503 or nothing).
Its progress is not the server consumer's but the committed offset in the log's KV bucket, so
replacing the pull consumer never moves the committed offset.

A read first asks for what is there (`no_wait`), then long-polls until its timeout (in pulls
of at most `_LONG_POLL` seconds); at most one pull request is open at a time, so every
delivered message belongs to it. The records fetched stay in a window (those at or after the
committed offset, up to `_KEEP` records), so `seek(committed)` after a failed sink write
replays from memory, without a new pull consumer.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
from dataclasses import dataclass
from typing import Final, Protocol

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api

from ingest.wal.jetstream.bridge import LoopThread

log = structlog.get_logger(__name__)

# Longest pull request: a lost one (its server died) is noticed after this plus the grace.
_LONG_POLL: Final = 5.0
# Records kept after they were read, for a seek back without a new pull consumer.
_KEEP: Final = 50_000
# An unused pull consumer is deleted by the server after this long (crashed processes' too).
_INACTIVE_THRESHOLD: Final = 60.0
_FIRST: Final = 0  # index of the offset in a (offset, record) pair


class ConsumerHost(Protocol):
    """What a consumer needs from `JetStreamLog` (so that this module does not import it)."""

    stream: str
    bridge: LoopThread

    @property
    def durable_offset(self) -> int: ...

    @property
    def oldest_offset(self) -> int: ...

    @property
    def connection(self) -> Client: ...

    @property
    def request_timeout(self) -> float: ...

    def commit(self, consumer: str, offset: int) -> None:
        """Durably store `consumer`'s committed offset."""
        ...

    def saw(self, end: int) -> None:
        """Records below `end` were read: they are durable."""
        ...


@dataclass(eq=False)
class _Pull:
    """One incarnation of the server-side pull consumer and its inbox."""

    name: str
    inbox: str
    subscription: Subscription | None = None
    open: bool = False  # a pull request may still deliver
    no_wait: bool = False  # the open request is a no_wait probe
    left: int = 0  # messages the open request may still deliver
    ends_at: float = 0.0  # loop time by which the open request must have ended
    broken: bool = False


class JetStreamConsumer:
    """Reads a JetStream log for one named consumer and commits its progress durably."""

    def __init__(self, host: ConsumerHost, name: str, committed: int) -> None:
        self.name = name
        self._host = host
        self._committed = committed
        self._window: list[tuple[int, bytes]] = []  # fetched; [:_next] already read
        self._next = 0
        self._fetch_from = committed  # the offset the pull consumer delivers next
        self._pull: _Pull | None = None
        self._closed = False
        self._changed = asyncio.Event()

    @property
    def committed(self) -> int:
        """The committed offset: everything below it is done; a restart resumes here."""
        return self._committed

    @property
    def position(self) -> int:
        """The offset `read` returns next (or the first retained one after it)."""
        if self._next < len(self._window):
            return self._window[self._next][_FIRST]
        return self._fetch_from

    def read(self, max_records: int, timeout: float | None = 0.0) -> list[tuple[int, bytes]]:
        """Up to `max_records` durable (offset, record) pairs, oldest first; [] on timeout or close."""
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        if self._closed:
            return []
        return self._host.bridge.run(self._read(max_records, timeout))

    def seek(self, offset: int) -> None:
        """Read from `offset` next (at most the durable end); below the oldest record, from it."""
        if not 0 <= offset <= self._host.durable_offset:
            raise ValueError(f"offset {offset} is outside [0, {self._host.durable_offset}]")
        if not self._closed:
            self._host.bridge.run(self._seek(offset))

    def commit(self, offset: int) -> None:
        """Durably record that every record below `offset` is done."""
        self._host.commit(self.name, offset)
        self._committed = offset

    def lag(self) -> int:
        """Durable records at or after the committed offset."""
        host = self._host
        return max(0, host.durable_offset - max(self._committed, host.oldest_offset))

    # -- on the log's loop -------------------------------------------------------------------

    async def close_async(self) -> None:
        """Wake a waiting read (it returns []) and delete the pull consumer."""
        self._closed = True
        self._changed.set()
        await self._discard()

    def connection_lost(self) -> None:
        """After a reconnect the open pull request is gone: start a new pull consumer."""
        if self._pull is not None:
            self._pull.broken = True
        self._changed.set()

    async def _read(self, max_records: int, timeout: float | None) -> list[tuple[int, bytes]]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + max(timeout, 0.0)
        grace = self._host.request_timeout
        probed = False  # asked for what is there (no_wait) in this read
        while not self._closed:
            self._changed.clear()
            if out := self._take(max_records):
                return out
            now = loop.time()
            pull = await self._current_pull()
            if pull is None:  # the stream is unavailable (an election): wait a little, retry
                if deadline is not None and now >= deadline:
                    return []
                await _wait(self._changed, 0.2 if deadline is None else min(0.2, deadline - now))
                continue
            if not pull.open:
                if not probed:
                    await self._request(pull, max_records, None)
                    probed = True
                elif deadline is not None and deadline - now < 0.001:
                    return []
                else:
                    expires = _LONG_POLL if deadline is None else min(_LONG_POLL, deadline - now)
                    await self._request(pull, max_records, expires)
            # The no_wait probe is awaited past the caller's deadline (one round trip); a long
            # poll until the deadline, or until its end and the grace (a lost request).
            limit = pull.ends_at + grace - loop.time()
            if deadline is not None and not (pull.open and pull.no_wait):
                limit = min(limit, deadline - loop.time())
            if not await _wait(self._changed, max(limit, 0.0)):
                if pull.open and loop.time() >= pull.ends_at + grace:
                    log.warning("jetstream_pull_lost", stream=self._host.stream, consumer=self.name)
                    pull.broken = True
                elif deadline is not None and loop.time() >= deadline:
                    return self._take(max_records)
        return []

    async def _seek(self, offset: int) -> None:
        window = self._window
        if window and window[0][_FIRST] <= offset <= self._fetch_from:
            self._next = bisect.bisect_left(window, offset, key=lambda pair: pair[_FIRST])
            return
        if not window and offset == self._fetch_from:
            return
        await self._discard()
        window.clear()
        self._next = 0
        self._fetch_from = offset

    def _take(self, max_records: int) -> list[tuple[int, bytes]]:
        window, start = self._window, self._next
        out = window[start : start + max_records]
        self._next = start + len(out)
        # Keep read records from the committed offset on (a seek back replays them), boundedly.
        drop = 0
        while drop < self._next and (window[drop][_FIRST] < self._committed or self._next - drop > _KEEP):
            drop += 1
        if drop:
            del window[:drop]
            self._next -= drop
        return out

    async def _current_pull(self) -> _Pull | None:
        pull = self._pull
        if pull is not None and not pull.broken:
            return pull
        await self._discard()
        nc = self._host.connection
        pull = _Pull(name=nc.new_inbox().rsplit(".", 1)[-1], inbox=nc.new_inbox())
        start = self._fetch_from
        config = api.ConsumerConfig(
            name=pull.name,
            ack_policy=api.AckPolicy.NONE,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if start > 1 else api.DeliverPolicy.ALL,
            opt_start_seq=start if start > 1 else None,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=_INACTIVE_THRESHOLD,
        )
        try:
            await nc.jetstream(timeout=self._host.request_timeout).add_consumer(self._host.stream, config)
            pull.subscription = await nc.subscribe(pull.inbox, cb=functools.partial(self._on_message, pull))
        except (nats.errors.Error, OSError) as exc:
            log.warning(
                "jetstream_pull_consumer_failed",
                stream=self._host.stream,
                consumer=self.name,
                error=repr(exc),
            )
            return None
        self._pull = pull
        return pull

    async def _request(self, pull: _Pull, batch: int, expires: float | None) -> None:
        """Ask for up to `batch` records: what is there (expires None), or waiting `expires` s."""
        loop = asyncio.get_running_loop()
        request: dict[str, int | bool] = {"batch": batch}
        if expires is None:
            request["no_wait"] = True
        else:
            request["expires"] = int(expires * 1e9)
        pull.open, pull.left, pull.no_wait = True, batch, expires is None
        pull.ends_at = loop.time() + (expires or 0.0)
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._host.stream}.{pull.name}"
        try:
            await self._host.connection.publish(subject, json.dumps(request).encode(), reply=pull.inbox)
        except (nats.errors.Error, OSError):
            pull.broken = True

    async def _on_message(self, pull: _Pull, msg: Msg) -> None:
        if pull is not self._pull:
            return  # a discarded pull consumer's late message
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            offset = msg.metadata.sequence.stream
            if offset >= self._fetch_from:
                self._window.append((offset, msg.data))
                self._fetch_from = offset + 1
                self._host.saw(offset + 1)
            pull.left -= 1
            pull.open = pull.left > 0
        elif status == "100":  # idle heartbeat
            return
        else:
            # 404 no messages, 408 request expired: the request ended. 409 (leadership
            # change, consumer deleted, ...) and 503 (no consumer) also need a new consumer.
            pull.open = False
            if status not in ("404", "408"):
                description = msg.headers.get("Description", "") if msg.headers else ""
                log.info(
                    "jetstream_pull_ended",
                    stream=self._host.stream,
                    consumer=self.name,
                    status=status,
                    description=description,
                )
                pull.broken = True
        self._changed.set()

    async def _discard(self) -> None:
        pull, self._pull = self._pull, None
        if pull is None:
            return
        nc = self._host.connection
        try:
            if pull.subscription is not None:
                await pull.subscription.unsubscribe()
            # Best effort: the server deletes it after _INACTIVE_THRESHOLD anyway.
            await asyncio.wait_for(
                nc.jetstream().delete_consumer(self._host.stream, pull.name), self._host.request_timeout
            )
        except (nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError):
            pass


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout` seconds."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True
