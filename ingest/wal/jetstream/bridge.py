"""The JetStream log's event loop: nats-py is asyncio, the log seam's callers are threads.

A `LoopThread` runs one asyncio loop on a daemon thread owned by the log; callers hand it
coroutines with `run` (wait for the result) or `spawn` (fire and forget). Everything that
touches the NATS connection runs on that loop, so the connection needs no locks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop on a thread of its own, until `stop`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thread.start()

    @classmethod
    def opened(cls, name: str, opening: Coroutine[Any, Any, Any]) -> LoopThread:
        """A loop thread that has run `opening` (connecting, creating streams); stopped again, and the
        error raised, if `opening` fails."""
        bridge = cls(name)
        try:
            bridge.run(opening)
        except BaseException:
            bridge.stop()
            raise
        return bridge

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and return its result (or raise its exception) in this thread."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run called from its own loop: it would wait for itself")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Start `coro` on the loop without waiting; an exception it raises is logged."""
        self.loop.call_soon_threadsafe(self._start_task, coro)

    def stop(self) -> None:
        """Cancel what still runs, stop the loop and end the thread. Idempotent."""
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self._cancel_all)
        self._thread.join()
        self.loop.close()

    def _start_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("jetstream_task_failed", exc_info=task.exception())

    def _cancel_all(self) -> None:
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.loop.call_soon(self.loop.stop)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
