"""An outbox in a process of its own, for tests that kill it: `python -m ... <notify.json> <alerts.db>`.

Runs a `NotificationDispatcher` on the wall clock with its worker threads until it is killed;
prints "started" on stdout once it runs, and logs to stderr.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import structlog

from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher


def main() -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    config = NotifyConfig.model_validate(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    NotificationDispatcher(config, Path(sys.argv[2])).start()
    print("started", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
