"""One logger connection: read and frame, hand every packet off, answer in order once durable.

Two tasks per connection. The reader frames what arrives, has each event judged (`admission`:
CRC, syntax, MN and PW against the registry, password lockouts), hands it off unless refused and
queues its answers; the writer takes the queue in order, waits until each packet is durable, then
writes its answers. The queue holds at most `max_unanswered` packets: past that the reader stops
reading, so a slow handoff slows the loggers (TCP pushes back) instead of filling memory.

A connection is closed (the `reason` of `hj212_connection_closed`) when the peer closes
(`peer_closed`), sends no valid packet for `idle_timeout` (`idle_timeout`: only a whole valid
packet resets it, so neither a half-open connection nor a trickle of garbage holds a slot), takes
longer than `packet_timeout` over a packet once its `##` arrived (`packet_timeout`, slow senders),
has sent more than `max_garbage_bytes` of garbage, broken or refused packets in its life (`garbage`;
valid packets in between do not reset the count), does not take an answer within `write_timeout`
(`write_timeout`), has a packet not made durable within `handoff_timeout` (`handoff_timeout`), the
handoff raises on submit (`handoff_failed`), or the peer resets the connection
(`connection_reset`). Whatever is left in the framer on close (a started packet, garbage) is
handed off too. After the peer closes, answers still due are written first. A packet the gateway
consumes (an answer to its own request) is not handed off; what it has to send (a clock correction)
still waits its turn behind the answers before it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ingest.sources.hj212_gateway import events
from ingest.sources.hj212_gateway.admission import Admission, Verdict
from ingest.sources.hj212_gateway.config import HJ212GatewayConfig
from ingest.sources.hj212_gateway.framing import Event, Framer, Garbage
from ingest.sources.hj212_gateway.handoff import UNFRAMED_TOPIC, Handoff, sniff_mn, topic_for
from ingest.sources.hj212_gateway.peers import peer_label

log = structlog.get_logger(__name__)

# One read at most; the framer keeps no more than a packet of it past each call.
_READ_BYTES = 4096


@dataclass(frozen=True, slots=True)
class _Pending:
    """A handed-off packet awaiting durability, and the answers to write then."""

    durable: asyncio.Future[None]
    deadline: float
    answers: tuple[bytes, ...]


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        config: HJ212GatewayConfig,
        handoff: Handoff,
        admission: Admission,
        peer_key: str,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._config = config
        self._handoff = handoff
        self._admission = admission
        self._framer = Framer(config.max_packet_bytes)
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(config.max_unanswered)
        self.peer = peer_label(writer.get_extra_info("peername"))
        self.peer_key = peer_key  # the peer for the per-peer limits (peers.peer_key)
        self.packets = 0
        self.bytes_in = 0
        self._junk = 0  # bytes of garbage, broken and refused packets over the connection's life
        self._loop = asyncio.get_running_loop()
        self._idle_deadline = self._loop.time() + config.idle_timeout.total_seconds()

    async def run(self) -> str:
        """Serve the connection until it ends; returns the close reason."""
        reader = asyncio.create_task(self._read_loop())
        writer = asyncio.create_task(self._write_loop())
        reason = "server_stopping"
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                reason = reader.result()
                if reason != "handoff_failed":
                    self._hand_off_rest()
                if reason == "peer_closed":
                    # The peer may only have shut its sending side: write the answers still due.
                    end = asyncio.ensure_future(self._queue.put(None))
                    await asyncio.wait({writer})
                    end.cancel()
                    reason = writer.result()
                    if reason == "done":
                        reason = "peer_closed"
            else:
                reason = writer.result()
                self._hand_off_rest()
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            self._close(abort=reason != "peer_closed")
        return reason

    # --- reading -----------------------------------------------------------------------------------
    async def _read_loop(self) -> str:
        packet_timeout = self._config.packet_timeout.total_seconds()
        packet_deadline: float | None = None
        started = self._framer.packets_started
        while True:
            # Bytes alone do not move the idle deadline: only a valid packet does (`_dispatch`).
            deadline, kind = self._idle_deadline, "idle_timeout"
            if packet_deadline is not None and packet_deadline < deadline:
                deadline, kind = packet_deadline, "packet_timeout"
            try:
                async with asyncio.timeout_at(deadline):
                    data = await self._reader.read(_READ_BYTES)
            except TimeoutError:
                return kind
            except ConnectionError:
                return "connection_reset"
            if not data:
                return "peer_closed"
            self.bytes_in += len(data)
            events.bytes_received(len(data))
            for event in self._framer.feed(data):
                failure = await self._dispatch(event)
                if failure is not None:
                    return failure
            if self._framer.packets_started != started:
                started = self._framer.packets_started
                packet_deadline = self._loop.time() + packet_timeout if self._framer.in_packet else None
            elif not self._framer.in_packet:
                packet_deadline = None
            # Garbage still coalescing in the framer counts too.
            if self._junk + self._framer.garbage_buffered > self._config.max_garbage_bytes:
                return "garbage"
            if self._loop.time() >= self._idle_deadline:  # a read that never waits is idle too
                return "idle_timeout"

    async def _dispatch(self, event: Event) -> str | None:
        """Hand one event off unless refused, queueing its answers; a close reason if the handoff fails."""
        verdict = self._admission.judge(event, self.peer_key, self._loop.time())
        self._report(verdict)
        if not verdict.valid:
            self._junk += len(event.data)
        topic = verdict.topic
        if verdict.consumed:
            events.packet_consumed(self.peer, verdict.cn)
            if verdict.answers:
                done = self._loop.create_future()
                done.set_result(None)
                deadline = self._loop.time() + self._config.handoff_timeout.total_seconds()
                await self._queue.put(_Pending(done, deadline, verdict.answers))
            self._idle_deadline = self._loop.time() + self._config.idle_timeout.total_seconds()
            return None
        if topic is None:
            events.packet_refused(verdict.outcome)
            return None
        self.packets += 1
        pending = _Pending(
            self._loop.create_future(),
            self._loop.time() + self._config.handoff_timeout.total_seconds(),
            verdict.answers,
        )
        payload = event.data if verdict.payload is None else verdict.payload
        await self._queue.put(pending)
        try:
            self._handoff.submit(topic, payload, self._on_durable_callback(pending.durable))
        except Exception:
            log.exception("hj212_handoff_submit_failed", peer=self.peer, topic=topic)
            return "handoff_failed"
        events.packet_handed_off(self.peer, verdict.outcome, topic, len(payload), verdict.cn)
        if verdict.valid:  # from now, not from its arrival: waiting on a slow handoff is not idling
            self._idle_deadline = self._loop.time() + self._config.idle_timeout.total_seconds()
        return None

    def _report(self, verdict: Verdict) -> None:
        if verdict.error is not None:
            events.internal_error("hj212_gateway_packet", self.peer, verdict.error)
        if verdict.clock is not None and verdict.mn is not None:
            events.clock(verdict.mn, self.peer, verdict.clock)
        if verdict.lockout_started and verdict.mn is not None:
            lockout = self._admission.lockout
            events.password_lockout(
                verdict.mn,
                self.peer_key,
                failures=lockout.max_failures,
                window_s=lockout.window_s,
                lockout_s=lockout.lockout_s,
            )

    def _on_durable_callback(self, future: asyncio.Future[None]) -> Callable[[], None]:
        loop = self._loop

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        def on_durable() -> None:
            # Any thread; the loop may be gone if the gateway stopped before the ack.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(resolve)

        return on_durable

    def _hand_off_rest(self) -> None:
        """Hand off what the framer still holds; nothing waits for it and nothing is answered."""
        for event in self._framer.close():
            topic = UNFRAMED_TOPIC if isinstance(event, Garbage) else topic_for(sniff_mn(event.data))
            outcome = "unframed" if isinstance(event, Garbage) else event.kind
            try:
                self._handoff.submit(topic, event.data, _ignore)
            except Exception:
                log.exception("hj212_handoff_submit_failed", peer=self.peer, topic=topic)
                return
            self.packets += 1
            events.packet_handed_off(self.peer, outcome, topic, len(event.data))

    # --- writing -----------------------------------------------------------------------------------
    async def _write_loop(self) -> str:
        write_timeout = self._config.write_timeout.total_seconds()
        while True:
            pending = await self._queue.get()
            if pending is None:
                return "done"
            try:
                async with asyncio.timeout_at(pending.deadline):
                    await pending.durable
            except TimeoutError:
                return "handoff_timeout"
            if not pending.answers:
                continue
            self._writer.write(b"".join(pending.answers))
            try:
                async with asyncio.timeout(write_timeout):
                    await self._writer.drain()
            except TimeoutError:
                return "write_timeout"
            except ConnectionError:
                return "connection_reset"
            events.responses_sent([_command_of(answer) for answer in pending.answers])

    def _close(self, *, abort: bool) -> None:
        transport = self._writer.transport
        if abort:
            transport.abort()  # do not wait to flush to a peer that may not read
        else:
            transport.close()


def _command_of(packet: bytes) -> str:
    """The CN of a packet we built (for the responses metric)."""
    start = packet.find(b"CN=") + 3
    return packet[start : start + 4].decode("ascii")


def _ignore() -> None:
    pass
