"""`HJ212Gateway`: the TCP listener for data loggers, on an asyncio loop in a thread of its own.

Each accepted connection runs as its own task (`connection.Connection`) with its own timeouts and
bounded buffers, so a slow, half-open or garbage-sending logger costs one task and never delays
the others. Past `max_connections` in all, or `max_connections_per_peer` from one address
(`peers`), new connections are accepted and closed at once (rather than left in the listen
backlog, where a logger would wait for its own timeout), so one address cannot take every slot.
All connections share one `admission.Admission`, so a password lockout holds across reconnects.

`start()` binds (raising `OSError` if it cannot) and returns once the gateway listens; `port`
gives the bound port (for `port: 0`); `stop()` closes the listener and every connection. The
handoff belongs to the caller, who closes it after `stop()` so that what was submitted gets out.

    gateway = HJ212Gateway(config, handoff, registry)
    gateway.start()
    ...
    gateway.stop()
    handoff.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from config.registry import Registry
from ingest.sources.hj212_gateway import events
from ingest.sources.hj212_gateway.admission import Admission
from ingest.sources.hj212_gateway.config import HJ212GatewayConfig
from ingest.sources.hj212_gateway.connection import Connection
from ingest.sources.hj212_gateway.handoff import Handoff
from ingest.sources.hj212_gateway.lockout import PasswordLockout
from ingest.sources.hj212_gateway.peers import ConnectionSlots, peer_key, peer_label

log = structlog.get_logger(__name__)

_START_TIMEOUT_S = 30.0
# Loggers reconnect together after a network outage; the default of 100 would drop their SYNs.
_BACKLOG = 1024


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HJ212Gateway:
    def __init__(
        self,
        config: HJ212GatewayConfig,
        handoff: Handoff,
        registry: Registry,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.config = config
        self._handoff = handoff
        lockout = PasswordLockout(
            max_failures=config.max_password_failures,
            window_s=config.password_failure_window.total_seconds(),
            lockout_s=config.password_lockout.total_seconds(),
        )
        self._admission = Admission(config, registry, lockout, clock)
        self._slots = ConnectionSlots(config.max_connections, config.max_connections_per_peer)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._listening = threading.Event()
        self._start_error: BaseException | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the gateway is not listening")
        return self._port

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._tasks)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the gateway was already started")
        self._thread = threading.Thread(target=self._run, name="hj212-gateway", daemon=True)
        self._thread.start()
        if not self._listening.wait(_START_TIMEOUT_S):
            raise RuntimeError("the HJ 212 gateway did not start listening")
        if self._start_error is not None:
            raise self._start_error

    def stop(self, timeout: float = 10.0) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is None or stopping is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has already ended
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)

    # --- the loop's thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(), or logged: never lost in a thread
            if self._listening.is_set():
                log.exception("hj212_gateway_failed")
            else:
                self._start_error = exc
        finally:
            self._listening.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(
            self._accept, self.config.host, self.config.port, reuse_address=True, backlog=_BACKLOG
        )
        self._port = server.sockets[0].getsockname()[1]
        events.gateway_started(self.config.host, self._port)
        self._listening.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()
            events.gateway_stopped(len(tasks))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peername = writer.get_extra_info("peername")
        key = peer_key(peername)
        refusal, first = self._slots.take(key)
        if refusal is not None:
            events.connection_refused(peer_label(peername), refusal, first=first)
            writer.transport.abort()
            return
        connection = Connection(
            reader, writer, config=self.config, handoff=self._handoff, admission=self._admission, peer_key=key
        )
        self._tasks.add(task)
        events.connection_opened(connection.peer, len(self._tasks))
        started = time.monotonic()
        reason = "server_stopping"
        try:
            reason = await connection.run()
        except asyncio.CancelledError:
            reason = "server_stopping"
        except Exception as exc:  # a bug ends this connection, never the gateway or the others
            events.internal_error("hj212_gateway_connection", connection.peer, exc)
            reason = "internal_error"  # run() aborted the connection on its way out
        finally:
            self._tasks.discard(task)
            self._slots.give_back(key)
            events.connection_closed(
                connection.peer,
                reason,
                duration_s=time.monotonic() - started,
                packets=connection.packets,
                bytes_in=connection.bytes_in,
            )
