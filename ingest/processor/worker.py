"""The decode worker: `process_batch` in a child process, so decoding and validation get a core of their own.

The receive path holds the GIL for most of a core (ARCHITECTURE.md, facts), and decoding and validating a
message costs as much again: in one process the two halve each other's rate. The child gets
the pickled core at start and then, per batch, raw records in and encoded readings records out
over a pipe (a few ms per 2 000 messages). The thread that waits on the pipe holds no GIL
meanwhile. The child ignores SIGINT and SIGTERM (a terminal or a service manager sends them to
the whole group): it ends when the daemon closes the pipe, or dies with it. A lost child is
restarted with the next batch; the failed batch is retried (`ingest.processor.loop`).
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import queue
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import NoReturn

import structlog

from ingest import telemetry
from ingest.processor.batch import Processed, process_batch
from ingest.processor.core import MessageProcessor
from ingest.telemetry import LogFormat

log = structlog.get_logger(__name__)


class WorkerProcess:
    """Runs `process_batch` in a child process; batches are answered in the order submitted."""

    def __init__(
        self, core: MessageProcessor, log_level: str = "info", log_format: LogFormat = "auto"
    ) -> None:
        self._logging = (log_level, log_format)
        self._core = pickle.dumps(core)
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def start(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child, self._core, *self._logging),
            name="ecowatch-processor",
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        log.info("processor_worker_started", pid=process.pid)

    def submit(self, batch: Sequence[tuple[int, bytes]], now_ns: int) -> None:
        """Hand a batch to the child (starting it if needed); `collect` returns results in order."""
        if self._conn is None or self._process is None or not self._process.is_alive():
            self.stop(timeout=0)
            self.start()
        assert self._conn is not None
        try:
            self._conn.send((now_ns, list(batch)))
        except OSError as exc:
            self._lost(exc)

    def collect(self) -> list[Processed]:
        """The results of the oldest batch submitted and not yet collected."""
        if self._conn is None:
            raise RuntimeError("no batch in flight: the worker was restarted")
        try:
            results: list[Processed] = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._lost(exc)
        return results

    def _lost(self, exc: BaseException) -> NoReturn:
        exitcode = self._process.exitcode if self._process is not None else None
        log.error("processor_worker_lost", exitcode=exitcode, error=str(exc) or type(exc).__name__)
        self.stop(timeout=0)
        raise RuntimeError("the processor worker process was lost") from exc

    def stop(self, timeout: float) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            conn.close()  # the child sees EOF and exits
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(1.0)


def _worker_main(conn: Connection, core_pickle: bytes, log_level: str, log_format: LogFormat) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    core: MessageProcessor = pickle.loads(core_pickle)  # noqa: S301 - our own bytes, from our parent
    # The registry, catalogue and caches live as long as the process: keep them out of the
    # collector's full passes, which otherwise walk them again and again as messages go by.
    gc.freeze()
    # A spawned child starts with structlog's defaults, whose console tracebacks render every
    # frame's locals (a 60 KB payload, a list nested 1 000 deep) for minutes: log as the daemon does.
    telemetry.configure_logging(log_level, log_format)
    # Requests are read by a thread of their own: with two batches in flight the parent may be
    # writing the next while we write the last one's results, and neither pipe direction may
    # wait for the other to be read.
    requests: queue.SimpleQueue[tuple[int, list[tuple[int, bytes]]] | None] = queue.SimpleQueue()

    def receive() -> None:
        while True:
            try:
                requests.put(conn.recv())
            except (EOFError, OSError):
                requests.put(None)
                return

    threading.Thread(target=receive, name="requests", daemon=True).start()
    while (request := requests.get()) is not None:
        now_ns, batch = request
        try:
            conn.send(process_batch(core, batch, now_ns))
        except OSError:
            return  # the daemon is gone
