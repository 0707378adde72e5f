"""The daemon as a separate process, as an operator runs it: `python -m ingest.app.cli run --config FILE`.

A `DaemonProcess` writes the configuration it is given (plus a free HTTP port, its data dir and JSON
logs) to a YAML file in its folder, starts the daemon, waits until `/healthz` answers and reads
`/api/v1/stats` and `/readyz`. It can stop the daemon with SIGTERM (returning the exit status) or
SIGKILL (a crash), and start it again on the same data dir and port. The daemon's stderr (JSON
log lines) is appended to `daemon.log` in the folder across restarts, and every failure quotes its
end; `events(name)` parses it for assertions.

    daemon = DaemonProcess(tmp_path / "daemon", {"mqtt": {...}, "sinks": [...]})
    daemon.start()
    daemon.wait_for(lambda s: s["logs"]["raw_processed"] >= 100, timeout=30, what="100 processed")
    assert daemon.terminate() == 0
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import yaml

from tests.helpers import wait_for
from tests.servers import HOST, free_port, http_request

REPO: Final = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS: Final = 30.0
POLL_SECONDS: Final = 0.05
Stats = dict[str, Any]


class DaemonError(AssertionError):
    """The daemon did not do what the test waited for; the message quotes its log."""


class DaemonProcess:
    """One daemon configuration that can be started, stopped and killed repeatedly."""

    def __init__(
        self, folder: Path, config: Mapping[str, Any], *, env: Mapping[str, str] | None = None
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.data_dir = folder / "data"
        self.config_file = folder / "ecowatch.yaml"
        self.log_file = folder / "daemon.log"
        document = dict(config)
        document.setdefault("data_dir", str(self.data_dir))
        document["http"] = {"host": HOST, "port": self.port}
        document["log"] = {"level": "info", "format": "json", **dict(config.get("log", {}))}
        self.config_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        self._env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # --- lifecycle ---------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the daemon is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, *, timeout: float = START_TIMEOUT_SECONDS, env: Mapping[str, str] | None = None) -> None:
        """Start the daemon and wait until /healthz answers; `env` adds `ECOWATCH_*` overrides."""
        if self.running:
            raise RuntimeError("the daemon is already running")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ECOWATCH_")}
        environment.update(self._env)
        environment.update(env or {})
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ingest.app.cli", "run", "--config", str(self.config_file)],
                cwd=REPO,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.starts += 1
        self.poll_until(lambda: self._get("/healthz")[0] == 200, timeout, "/healthz answers")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit status (DaemonError if it does not exit in time)."""
        process = self._require_process()
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise DaemonError(f"the daemon ignored SIGTERM for {timeout} s\n{self.log_tail()}") from None
        self._process = None
        return status

    def kill(self) -> None:
        """SIGKILL: no shutdown work at all, as in a crash or a power cut (minus the page cache)."""
        process = self._require_process()
        process.kill()
        process.wait()
        self._process = None

    def pause(self) -> None:
        """SIGSTOP: the process frozen with its connections open (a hung machine, a long GC pause)."""
        self._require_process().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        self._require_process().send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Kill the daemon if it still runs (teardown after a failure)."""
        if self.running:
            self.kill()
        self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- observation -------------------------------------------------------------------------------
    def stats(self) -> Stats:
        status, body = self._get("/api/v1/stats")
        if status != 200:
            raise DaemonError(f"/api/v1/stats answered {status}: {body!r}\n{self.log_tail()}")
        stats: Stats = json.loads(body)
        return stats

    def readyz(self) -> tuple[int, Any]:
        status, body = self._get("/readyz")
        return status, json.loads(body) if body else None

    def wait_for(self, predicate: Callable[[Stats], bool], timeout: float, what: str) -> Stats:
        """Poll the stats until `predicate` holds; DaemonError naming `what` at the deadline."""
        last: list[Stats] = []

        def check() -> bool:
            stats = self.stats()
            last[:] = [stats]
            return predicate(stats)

        self.poll_until(check, timeout, what, detail=lambda: json.dumps(last[0] if last else None))
        return last[0]

    def wait_ready(self, timeout: float, *, ready: bool = True) -> Any:
        """Poll /readyz until it says ready (200) or, with ready=False, not ready (503)."""
        expected = 200 if ready else 503
        answers: list[Any] = []

        def check() -> bool:
            status, body = self.readyz()
            answers[:] = [body]
            return status == expected

        self.poll_until(check, timeout, f"/readyz answers {expected}", detail=lambda: repr(answers))
        return answers[0]

    def poll_until(
        self,
        condition: Callable[[], bool],
        timeout: float,
        what: str,
        detail: Callable[[], str] | None = None,
    ) -> None:
        """Poll `condition` (a refused connection counts as not yet) until it holds; fail, quoting
        the daemon's log, at the deadline or as soon as the daemon exits."""

        def check() -> bool:
            process = self._require_process()
            try:
                if condition():
                    return True
            except OSError:
                pass  # not listening yet, or restarting
            if process.poll() is not None:
                raise DaemonError(
                    f"the daemon exited ({process.returncode}) before: {what}\n{self.log_tail()}"
                )
            return False

        def explain() -> str:
            last = f"last: {detail()}\n" if detail is not None else ""
            return last + self.log_tail()

        wait_for(check, what, timeout, detail=explain, interval=POLL_SECONDS)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines written so far (all starts), optionally only those of one event."""
        out: list[dict[str, Any]] = []
        if not self.log_file.exists():
            return out
        for line in self.log_file.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                out.append(event)
        return out

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            return "(no daemon log)"
        tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.log_file} (last {len(tail)} lines) ---\n" + "\n".join(tail)

    def _get(self, path: str) -> tuple[int, bytes]:
        return http_request("GET", f"{self.url}{path}", timeout=5.0)

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the daemon is not running")
        return self._process


def proc_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds, user + system, and peak RSS in bytes) of a live process and its children, from /proc.

    The children (the daemon's processor worker) count while they live; the peak RSS is the sum
    of each process's own peak, an upper bound of their peak together.
    """
    cpu, peak = _own_usage(pid)
    for child in _children(pid):
        try:
            child_cpu, child_peak = proc_usage(child)
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
        cpu += child_cpu
        peak += child_peak
    return cpu, peak


def _own_usage(pid: int) -> tuple[float, int]:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return cpu, peak


def _children(pid: int) -> list[int]:
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            children.append(int(entry.name))
    return children
