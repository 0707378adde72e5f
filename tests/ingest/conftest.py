"""Fixtures shared by the ingest tests: real NATS servers on loopback, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import MissingServerBinaryError, NatsCluster, NatsServer


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One single-node NATS server (JetStream) for the module; each test uses streams and buckets of its own."""
    try:
        server = NatsServer(tmp_path_factory.mktemp("nats"))
    except MissingServerBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """One three-node NATS cluster for the module; a test that stops or pauses a node restores it."""
    try:
        cluster = NatsCluster(tmp_path_factory.mktemp("nats-cluster"))
    except MissingServerBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    with cluster:
        yield cluster
