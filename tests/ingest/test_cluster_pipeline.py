"""The cluster worker's pipeline on one partition, with the lease, the checkpoint store and the
outbox stream as in-memory stand-ins (the real ones are tested in tests/ingest/test_cluster_*.py
and together in tests/integration/test_cluster_worker.py): the order of its durable acts."""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.config import AlertsConfig
from alerts.notify_config import NotifyConfig
from alerts.outbox import ClusterOutboxFeed
from alerts.service import AlertService
from config.registry import Registry
from ingest.app.cluster_pipeline import PartitionPipeline
from ingest.app.daemon import build_processor_core
from ingest.app.settings import Settings
from ingest.cluster import Checkpoint, Published
from ingest.cluster.source import StationMessage
from ingest.deadletter import DeadLetterConfig, DeadLetterStore
from simulators.formats import JsonFormat
from tests.alerts.engine_support import FakeClock
from tests.helpers import station


@dataclass
class Acts:
    """What the pipeline made durable, in order: ("save", sequence, events in the image) or
    ("publish", key)."""

    done: list[tuple[object, ...]] = field(default_factory=list)
    images: dict[int, Checkpoint] = field(default_factory=dict)

    def load(self, partition: int) -> Checkpoint | None:
        return self.images.get(partition)

    def save(self, partition: int, epoch: int, sequence: int, data: bytes) -> bool:
        self.images[partition] = Checkpoint(partition, epoch, sequence, data)
        self.done.append(("save", sequence, _events_in(data)))
        return True

    def publish(self, key: str, payload: bytes, *, topic: str = "all") -> Published:
        self.done.append(("publish", key))
        return Published(len(self.done), duplicate=False)

    def holds(self, partition: int, epoch: int, *, releasing: bool = False) -> bool:
        return True


def _events_in(image: bytes) -> int:
    """The notification events in an image, opened as a next owner opens it: as a file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "alerts.db"
        path.write_bytes(image)
        with closing(sqlite3.connect(path)) as db:
            (count,) = db.execute("SELECT COUNT(*) FROM notification_events").fetchone()
    return int(count)


def test_events_a_tick_decides_are_checkpointed_before_they_are_published(tmp_path: Path) -> None:
    """A station falls silent: the tick's alert is in a saved checkpoint before it goes to the
    outbox stream, so a next owner (which would not decide it again from the readings) has it."""
    quiet = station("quiet", report_interval_s=600)
    registry = Registry([quiet])
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now)
    alerts = AlertsConfig.model_validate(
        {"rules": [{"name": "silent_station", "kind": "silent_station", "intervals": 3}]}
    )
    notify = NotifyConfig.model_validate(
        {
            "receivers": [
                {
                    "type": "webhook",
                    "name": "duty",
                    "url": "http://127.0.0.1:9/hook",
                    "secret": "whsec_" + "A" * 32,
                }
            ]
        }
    )
    acts = Acts()
    letters = DeadLetterStore(tmp_path / "deadletter.db", DeadLetterConfig())
    pipeline = PartitionPipeline(
        core=build_processor_core(Settings(), registry),
        sinks=[],
        deadletters=letters,
        make_service=lambda _p, path: AlertService(alerts, registry, path, clock=clock),
        make_feed=lambda path: ClusterOutboxFeed(notify, path),
        checkpoints=acts,
        outbox=acts,
        holder=acts,
        data_dir=tmp_path / "cluster",
        checkpoint_interval=3600.0,
    )
    try:
        assert pipeline.opened(0, 1) == 0
        ((topic, payload),) = JsonFormat().encode(quiet, now - timedelta(minutes=1), {"ph": (7.5, "N")})
        message = StationMessage(7, topic.encode(), payload, int(now.timestamp()) * 10**9, False)
        assert pipeline.handle(0, 1, [message], lambda: True)
        assert acts.done == []  # nothing to publish, no checkpoint due yet
        pipeline.tick(clock.advance(minutes=31))
        (key,) = [act[1] for act in acts.done if act[0] == "publish"]
        assert acts.done[0] == ("save", 7, 1)  # the silence alert is in the image first
        assert acts.done[1] == ("publish", key)
        assert key.endswith("@duty")
    finally:
        pipeline.closed(0)
        letters.close()
