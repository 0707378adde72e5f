"""`JetStreamLog`: the log seam's `Log` over one JetStream stream (see the package docstring).

Appends go to a memory buffer under a lock (no I/O); `sync()` publishes the buffer pipelined,
each record with `Nats-Expected-Last-Sequence: offset - 1`, and waits for every PubAck. A
record can therefore only ever be stored at the offset `append` gave it, and at most once: a
retry after a timeout (a leader election) re-reads the stream's last sequence and publishes
only what is not there. The one writer of a stream is the log that publishes to it.

Offsets are stream sequences (from 1). Committed offsets are values in the KV bucket
`<stream>-offsets`; a commit is durable once the KV put is acknowledged. Retention is the
stream's limits plus purges up to the smallest committed offset of the known consumers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final, TypeVar

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from ingest.errors import WalFullError
from ingest.wal.jetstream.bridge import LoopThread
from ingest.wal.jetstream.config import JetStreamLogConfig
from ingest.wal.jetstream.consumer import JetStreamConsumer
from ingest.wal.offsets import validate_consumer_name
from ingest.wal.seam import Start

if TYPE_CHECKING:
    from ingest.wal.seam import Log

log = structlog.get_logger(__name__)

# Offsets are stream sequences: the first record ever appended to a stream is at 1.
FIRST_OFFSET: Final = 1
_STREAM_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
# The user:password@ of a server URL, kept out of log lines and names.
_USERINFO: Final = re.compile(r"(?<=://)[^/@]*@")
_EXPECTED_LAST: Final = "Nats-Expected-Last-Sequence"
# Stored bytes of one record in a file-store stream, as the server counts them against
# max_bytes (measured: 22 + subject + headers + payload + 8, +4 with headers). The headers are
# "NATS/1.0\r\n" + "Nats-Expected-Last-Sequence: <n>\r\n" + "\r\n".
_RECORD_OVERHEAD: Final = 22 + 8 + 4 + len("NATS/1.0\r\n") + len(_EXPECTED_LAST) + len(": \r\n\r\n")
# Room left under the server's max_payload for the headers.
_HEADER_ROOM: Final = 128
# JetStream API error codes (nats-server errors.json).
_WRONG_LAST_SEQUENCE: Final = 10071
_STREAM_NAME_IN_USE: Final = 10058
_NO_PEERS: Final = 10005
# What a leader election or a frozen server looks like to a request: retried until a deadline.
_TRANSIENT: Final = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.js.errors.ServiceUnavailableError,
    # A publish (a KV put: a commit) while the stream has no leader.
    nats.js.errors.NoStreamResponseError,
)

T = TypeVar("T")


class SyncError(RuntimeError):
    """`sync` could not confirm the buffered records before its deadline: the log is unusable."""


class JetStreamLog:
    """A durable, multi-consumer log on a JetStream stream: the log seam's `Log`."""

    def __init__(
        self,
        servers: Sequence[str],
        stream: str,
        *,
        subject: str | None = None,
        replicas: int = 1,
        quota_bytes: int = 2 * 2**30,
        sync_timeout: float = 30.0,
        request_timeout: float = 2.0,
        purge_interval: float = 1.0,
    ) -> None:
        if not _STREAM_NAME.fullmatch(stream):
            raise ValueError(f"invalid stream name {stream!r}: must match {_STREAM_NAME.pattern}")
        self.servers = list(servers)
        self.stream = stream
        self.subject = subject or f"ecowatch.log.{stream}"
        self._replicas = replicas
        self._quota = quota_bytes
        self._sync_timeout = sync_timeout
        self._request_timeout = request_timeout
        self._purge_interval = purge_interval
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._buffer: list[bytes] = []
        self._buffered_bytes = 0
        self._closed = False
        self._failed: BaseException | None = None
        self._full = False
        self._offsets: dict[str, int] = {}
        self._consumers: list[JetStreamConsumer] = []
        # Usage = server bytes at the last refresh + estimated bytes synced since (`_synced`:
        # (durable end, cumulative estimated bytes) after each sync) + buffered bytes.
        self._server_bytes = 0
        self._synced: deque[tuple[int, int]] = deque()
        self._synced_total = 0
        self._purged_below = 0
        self._last_purge = 0.0
        self._purge_pending = False
        self._acks: dict[str, asyncio.Future[Msg]] = {}
        # Set by _open from the stream's state and the server's max_payload.
        self._end = self._durable = self._oldest = self._max_record = 0
        self._next_token = 0
        self.bridge = LoopThread.opened(f"jetstream-{stream}", self._open())
        log.info(
            "jetstream_log_opened",
            stream=stream,
            servers=[redact_url(url) for url in self.servers],
            replicas=replicas,
            oldest_offset=self._oldest,
            end_offset=self._end,
            consumers=len(self._offsets),
        )

    @classmethod
    def from_config(cls, config: JetStreamLogConfig, *, stream: str | None = None) -> JetStreamLog:
        """The log `config` describes; `stream` (and its default subject) instead of `config.stream`."""
        return cls(
            config.servers,
            stream or config.stream,
            subject=config.subject if stream is None else None,
            replicas=config.replicas,
            quota_bytes=config.quota_bytes,
            sync_timeout=config.sync_timeout.total_seconds(),
            request_timeout=config.request_timeout.total_seconds(),
            purge_interval=config.purge_interval.total_seconds(),
        )

    # -- writing ---------------------------------------------------------------------------

    def append(self, record: bytes) -> int:
        """Buffer a record (not yet durable) and return its offset; WalFullError at the quota."""
        if len(record) > self._max_record:
            raise ValueError(f"record of {len(record)} bytes exceeds max_record_bytes")
        with self._lock:
            if self._closed or self._failed is not None:
                self._raise_unusable()
            offset = self._end
            size = self._stored_size(record, offset)
            if self._usage_locked() + size > self._quota:
                self._full = True
                full = True
            else:
                full = False
                self._buffer.append(record)
                self._buffered_bytes += size
                self._end = offset + 1
        if full:
            # Consumers may have committed since the last purge: purge now, for the retry.
            self.bridge.spawn(self._purge_async())
            raise WalFullError(f"JetStream log {self} reached its quota of {self._quota} bytes")
        return offset

    def sync(self) -> int:
        """Publish the buffered records and wait for every PubAck; return the durable end."""
        with self._sync_lock:
            with self._lock:
                if self._closed or self._failed is not None:
                    self._raise_unusable()
            return self._flush()

    def close(self) -> None:
        """Sync what is buffered, wake waiting reads, close the connection. Idempotent."""
        with self._sync_lock:
            with self._lock:
                if self._closed:
                    return
            try:
                if self._failed is None:
                    self._flush()
            finally:
                with self._lock:
                    self._closed = True
                    consumers = list(self._consumers)
                try:
                    self.bridge.run(self._close_async(consumers))
                finally:
                    self.bridge.stop()
        log.info("jetstream_log_closed", stream=self.stream, end_offset=self._end)

    # -- state -----------------------------------------------------------------------------

    def __str__(self) -> str:
        return f"jetstream:{self.stream}@{','.join(redact_url(url) for url in self.servers)}"

    def health(self) -> str | None:
        """Why the log cannot take records now (for /readyz); None when it can."""
        with self._lock:
            if self._failed is not None:
                return f"failed, reopen it: {self._failed}"
            if self._closed:
                return "closed"
        if not self._nc.is_connected:
            return "not connected to a NATS server (reconnecting)"
        return None

    @property
    def durable_offset(self) -> int:
        """End (exclusive) of the records acknowledged by the stream (stored on a quorum)."""
        return self._durable

    @property
    def oldest_offset(self) -> int:
        """Offset of the oldest retained record (the durable end when none is)."""
        return max(self._oldest, self._purged_below)

    @property
    def max_record_bytes(self) -> int:
        return self._max_record

    @property
    def quota_bytes(self) -> int:
        return self._quota

    def usage_bytes(self) -> int:
        """Stream bytes (as the server counts them) plus buffered records, against the quota."""
        with self._lock:
            return self._usage_locked()

    # -- consumers -------------------------------------------------------------------------

    def reader(self, consumer: str, start: Start = "beginning") -> JetStreamConsumer:
        """The consumer `consumer`, at its committed offset; a new one is registered at `start`."""
        validate_consumer_name(consumer)
        if start not in ("beginning", "end"):
            raise ValueError(f"start must be 'beginning' or 'end', not {start!r}")
        with self._lock:
            if self._closed:
                self._raise_unusable()
            committed = self._offsets.get(consumer)
            new = committed is None
            if committed is None:
                committed = self.oldest_offset if start == "beginning" else self._durable
                # Registered before it is stored so that purges already count it.
                self._offsets[consumer] = committed
        if new:
            self.bridge.run(self._put_offset(consumer, committed))
            log.info("jetstream_consumer_added", stream=self.stream, consumer=consumer, offset=committed)
        reader = JetStreamConsumer(self, consumer, committed)
        with self._lock:
            self._consumers.append(reader)
        return reader

    def consumers(self) -> dict[str, int]:
        """Committed offsets by consumer name."""
        with self._lock:
            return dict(self._offsets)

    def drop_consumer(self, name: str) -> None:
        """Forget a consumer, so that it no longer holds records back from purges."""
        validate_consumer_name(name)
        with self._lock:
            self._offsets.pop(name, None)
        self.bridge.run(self._retry(lambda: self._kv.purge(name), f"drop consumer {name}"))
        log.info("jetstream_consumer_dropped", stream=self.stream, consumer=name)
        self._after_commit()

    # -- the consumers' interface (`consumer.ConsumerHost`) ----------------------------------

    @property
    def connection(self) -> Client:
        return self._nc

    @property
    def request_timeout(self) -> float:
        return self._request_timeout

    def commit(self, consumer: str, offset: int) -> None:
        """Durably store `consumer`'s committed offset; purge what every consumer passed."""
        if not 0 <= offset <= self._durable:
            raise ValueError(f"offset {offset} is outside [0, {self._durable}]")
        # Durable first: a purge must never act on an offset a crash could take back.
        self.bridge.run(self._put_offset(consumer, offset))
        with self._lock:
            if consumer in self._offsets:
                self._offsets[consumer] = offset
        self._after_commit()

    def saw(self, end: int) -> None:
        """A consumer read records below `end`: they are durable (another process's appends)."""
        if end > self._durable:
            with self._lock:
                self._durable = max(self._durable, end)

    # -- private: opening and closing ------------------------------------------------------

    async def _open(self) -> None:
        self._nc = await nats.connect(
            servers=self.servers,
            name=f"ecowatch-log-{self.stream}",
            connect_timeout=self._request_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            # Notice a frozen server within ~3 s (the default, 2 min, would stall every sync).
            ping_interval=1,
            max_outstanding_pings=3,
            reconnected_cb=self._on_reconnected,
            error_cb=self._on_error,
        )
        try:
            self._js: JetStreamContext = self._nc.jetstream(timeout=self._request_timeout)
            info = await self._retry(self._ensure_stream, f"create stream {self.stream}")
            self._kv: KeyValue = await self._retry(
                lambda: self._js.create_key_value(
                    bucket=f"{self.stream}-offsets",
                    history=1,
                    replicas=self._replicas,
                    storage=api.StorageType.FILE,
                    direct=False,  # reads from the leader: never an offset older than a commit
                ),
                "create offsets bucket",
            )
            self._offsets = await self._load_offsets()
            self._ack_prefix = self._nc.new_inbox()
            await self._nc.subscribe(f"{self._ack_prefix}.*", cb=self._on_ack)
        except BaseException:
            await self._nc.close()
            raise
        state = info.state
        self._end = self._durable = state.last_seq + 1
        self._oldest = state.first_seq if state.messages else state.last_seq + 1
        self._server_bytes = state.bytes
        self._synced.append((self._durable, 0))
        # A record must fit the server's max_payload and an empty log.
        self._max_record = min(
            self._nc.max_payload - _HEADER_ROOM, self._quota - _RECORD_OVERHEAD - len(self.subject) - 20
        )

    async def _ensure_stream(self) -> api.StreamInfo:
        config = api.StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            retention=api.RetentionPolicy.LIMITS,
            # A full stream refuses new records (the server answers 10077, maximum bytes exceeded).
            discard=api.DiscardPolicy.NEW,
            max_bytes=self._quota,
            storage=api.StorageType.FILE,
            num_replicas=self._replicas,
        )
        try:
            return await self._js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise
            # Same stream, another configuration (a new quota): update it.
            return await self._js.update_stream(config)

    async def _close_async(self, consumers: list[JetStreamConsumer]) -> None:
        for consumer in consumers:
            await consumer.close_async()
        try:
            await asyncio.wait_for(self._nc.close(), self._request_timeout)
        except (TimeoutError, nats.errors.Error):
            log.warning("jetstream_close_timed_out", stream=self.stream)

    async def _on_reconnected(self) -> None:
        log.warning("jetstream_reconnected", stream=self.stream, server=str(self._nc.connected_url))
        with self._lock:
            consumers = list(self._consumers)
        for consumer in consumers:
            consumer.connection_lost()

    async def _on_error(self, exc: Exception) -> None:
        log.warning("jetstream_connection_error", stream=self.stream, error=repr(exc))

    def _raise_unusable(self) -> None:
        if self._failed is not None:
            raise RuntimeError(f"JetStream log {self} failed; reopen it to recover") from self._failed
        raise RuntimeError(f"JetStream log {self} is closed")

    # -- private: publishing ---------------------------------------------------------------

    def _stored_size(self, record: bytes, offset: int) -> int:
        return _RECORD_OVERHEAD + len(self.subject) + len(str(offset - 1)) + len(record)

    def _usage_locked(self) -> int:
        return self._server_bytes + self._synced_total - self._synced[0][1] + self._buffered_bytes

    def _flush(self) -> int:
        # Caller holds _sync_lock: one batch in flight at a time, in offset order.
        with self._lock:
            records, self._buffer = self._buffer, []
            if not records:
                return self._durable
            first = self._durable
            size = self._buffered_bytes
        try:
            self.bridge.run(self._publish(records, first))
        except BaseException as exc:
            with self._lock:
                self._failed = exc
            raise
        with self._lock:
            self._durable = first + len(records)
            self._buffered_bytes -= size
            self._synced_total += size
            self._synced.append((self._durable, self._synced_total))
            return self._durable

    async def _publish(self, records: list[bytes], first: int) -> None:
        """Publish `records` (offsets from `first`) until each is stored at its offset."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._sync_timeout
        done = 0  # records[:done] are stored
        attempt = 0
        while True:
            attempt += 1
            try:
                done = await self._publish_once(records, first, done)
            except (nats.errors.Error, OSError) as exc:
                problem = repr(exc)
            else:
                if done == len(records):
                    return
                problem = f"record at offset {first + done} not acknowledged"
            if loop.time() >= deadline:
                raise SyncError(f"JetStream log {self}: {problem}; gave up after {attempt} attempts")
            log.warning("jetstream_sync_retry", stream=self.stream, offset=first + done, problem=problem)
            last = await self._retry(self._last_sequence, "read the stream's last sequence", deadline)
            if last < first - 1 + done:
                raise SyncError(
                    f"JetStream log {self}: the stream ends at {last}, before acknowledged record "
                    f"{first - 1 + done}: records were lost (a replica's unsynced writes?)"
                )
            if last > first - 1 + len(records):
                raise SyncError(f"JetStream log {self}: the stream has another writer (last sequence {last})")
            # Stored but unacknowledged (the PubAck was lost): ours, unless another writer's.
            for offset in range(first + done, last + 1):
                stored = await self._retry(
                    functools.partial(self._js.get_msg, self.stream, offset),
                    "check a stored record",
                    deadline,
                )
                if stored.data != records[offset - first]:
                    raise SyncError(f"JetStream log {self}: the stream has another writer (at {offset})")
            done = last - first + 1
            if done == len(records):  # every one was stored; only the PubAcks were lost
                return

    async def _publish_once(self, records: list[bytes], first: int, done: int) -> int:
        """One pipelined attempt from records[done]; how many records are then stored in order."""
        loop = asyncio.get_running_loop()
        pending: list[tuple[str, asyncio.Future[Msg]]] = []
        try:
            for index in range(done, len(records)):
                offset = first + index
                token = str(self._next_token)
                self._next_token += 1
                future: asyncio.Future[Msg] = loop.create_future()
                self._acks[token] = future
                pending.append((token, future))
                await self._nc.publish(
                    self.subject,
                    records[index],
                    reply=f"{self._ack_prefix}.{token}",
                    headers={_EXPECTED_LAST: str(offset - 1)},
                )
            await asyncio.wait(
                [future for _, future in pending], timeout=self._request_timeout + len(pending) * 1e-4
            )
            for index, (_, future) in enumerate(pending, start=done):
                if not future.done() or not _stored_at(future.result(), first + index):
                    if future.done():
                        log.debug("jetstream_publish_refused", answer=future.result().data[:200])
                    return index
            return len(records)
        finally:
            for token, future in pending:
                self._acks.pop(token, None)
                future.cancel()

    async def _on_ack(self, msg: Msg) -> None:
        future = self._acks.pop(msg.subject[len(self._ack_prefix) + 1 :], None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def _last_sequence(self) -> int:
        info = await self._js.stream_info(self.stream)
        return info.state.last_seq

    # -- private: offsets and retention ----------------------------------------------------

    async def _put_offset(self, consumer: str, offset: int) -> None:
        await self._retry(lambda: self._kv.put(consumer, b"%d" % offset), f"commit {consumer}")

    async def _load_offsets(self) -> dict[str, int]:
        """Every consumer's committed offset in the bucket (other processes' consumers too)."""
        bucket = f"{self.stream}-offsets"
        prefix = f"$KV.{bucket}."
        info = await self._js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}>")
        offsets: dict[str, int] = {}
        for subject in info.state.subjects or {}:
            key = subject[len(prefix) :]
            try:
                entry = await self._kv.get(key)
            except nats.js.errors.NotFoundError:  # deleted or purged: dropped
                continue
            if entry.value is not None:
                offsets[key] = int(entry.value)
        return offsets

    def _after_commit(self) -> None:
        with self._lock:
            # Room is wanted now (an append was refused, or half the quota is used).
            urgent = self._full or 2 * self._usage_locked() >= self._quota
            due = time.monotonic() - self._last_purge >= self._purge_interval
        if urgent or due:
            self.bridge.run(self._purge_async())
        elif not self._purge_pending:
            self._purge_pending = True
            self.bridge.spawn(self._purge_later())

    async def _purge_later(self) -> None:
        await asyncio.sleep(self._purge_interval)
        await self._purge_async()

    async def _purge_async(self) -> None:
        """Purge the records below every known consumer's committed offset; refresh the usage."""
        self._purge_pending = False
        self._last_purge = time.monotonic()
        try:
            stored = await self._load_offsets()
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            log.warning("jetstream_purge_skipped", stream=self.stream, error=repr(exc))
            return
        with self._lock:
            # Our own consumers' latest commits win; other processes' come from the bucket.
            known = stored | self._offsets
            floor = min(known.values(), default=0)
        purged = floor > self._purged_below
        try:
            if purged:
                await self._js.purge_stream(self.stream, seq=floor)
                self._purged_below = floor
            info = await self._js.stream_info(self.stream)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            log.warning("jetstream_purge_failed", stream=self.stream, error=repr(exc))
            return
        state = info.state
        with self._lock:
            # Bytes synced after the server's last sequence (a sync in flight) still count.
            while len(self._synced) > 1 and self._synced[1][0] <= state.last_seq + 1:
                self._synced.popleft()
            self._server_bytes = state.bytes
            if purged:
                self._full = False
        log.debug("jetstream_purged", stream=self.stream, below=floor, bytes=state.bytes)

    async def _retry(self, call: Callable[[], Awaitable[T]], what: str, deadline: float | None = None) -> T:
        """`call()` again after timeouts and missing responders (a leader election), until the deadline."""
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self._sync_timeout
        delay = 0.05
        while True:
            try:
                return await call()
            except (*_TRANSIENT, nats.js.errors.BadRequestError) as exc:
                # 10005: a replica's node is offline, so an R3 asset cannot be placed yet.
                transient = not isinstance(exc, nats.js.errors.BadRequestError) or exc.err_code == _NO_PEERS
                if not transient or loop.time() + delay >= deadline:
                    raise
                log.warning("jetstream_request_retry", stream=self.stream, what=what, error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


def redact_url(url: str) -> str:
    """`url` without its credentials (nats://user:pw@host:4222 -> nats://***@host:4222)."""
    return _USERINFO.sub("***@", url)


def _stored_at(answer: Msg, offset: int) -> bool:
    """The PubAck says the record is stored at `offset` (an error or no responders says not)."""
    if answer.headers and answer.headers.get("Status"):
        return False
    body = json.loads(answer.data)
    if "error" in body:
        if body["error"].get("err_code") != _WRONG_LAST_SEQUENCE:
            log.warning("jetstream_publish_error", offset=offset, error=body["error"])
        return False
    return bool(body.get("seq") == offset)


if TYPE_CHECKING:
    # JetStreamLog implements the log seam; JetStreamConsumer, which `reader` returns, is its Consumer.
    _implements_the_seam: type[Log] = JetStreamLog
