"""`ecowatch cluster status` from the configuration's `cluster:` section, against a real NATS server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ingest.cluster import Ownership
from tests.helpers import wait_for
from tests.servers import MissingServerBinaryError, NatsServer

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    try:
        nats_server = NatsServer(tmp_path / "nats")
    except MissingServerBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    with nats_server:
        yield nats_server


def _status(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingest.app.cli", "cluster", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cluster_status_prints_the_partitions_and_their_owners(tmp_path: Path, server: NatsServer) -> None:
    """With one worker holding all 4 partitions, the command prints each partition's owner and
    epoch and the live worker, as JSON; without a `cluster:` section it says so and exits 2."""
    config = tmp_path / "ecowatch.yaml"
    cluster = {"servers": [server.url], "partitions": 4, "replicas": 1, "bucket_prefix": "cli"}
    config.write_text(yaml.safe_dump({"cluster": cluster}), encoding="utf-8")
    worker = Ownership(
        [server.url],
        partitions=4,
        worker_id="w-1",
        replicas=1,
        bucket_prefix="cli",
        lease_ttl=2.0,
        renew_interval=0.5,
    )
    worker.start()
    try:
        wait_for(lambda: len(worker.owned()) == 4 or None, "the worker to hold every partition")
        answer = _status(config)
    finally:
        worker.stop()
    assert answer.returncode == 0, answer.stderr
    status = json.loads(answer.stdout)
    assert status["live_workers"] == ["w-1"]
    assert sorted(row["partition"] for row in status["leases"]) == [0, 1, 2, 3]
    assert {row["owner"] for row in status["leases"]} == {"w-1"}
    assert all(row["epoch"] >= 1 for row in status["leases"])

    plain = tmp_path / "single.yaml"
    plain.write_text("{}\n", encoding="utf-8")
    refused = _status(plain)
    assert refused.returncode == 2
    assert "no `cluster:` section" in refused.stderr
