"""Fixtures shared by all tests: real servers on loopback (see `tests.servers`) and free ports.

Each server fixture starts its own server in the test's temp dir and stops it afterwards. A missing
binary fails the test with the Debian package to install: integration tests are never skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.servers import (
    AlertmanagerServer,
    InfluxDB1Server,
    MissingServerBinaryError,
    MosquittoServer,
    Server,
    VictoriaMetricsServer,
    free_port,
)

__all__ = ["free_port"]

_S = TypeVar("_S", bound=Server)


def _running(make: Callable[[], _S]) -> Iterator[_S]:
    try:
        server = make()
    except MissingServerBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A running Mosquitto broker with persistence and burst-sized queues."""
    yield from _running(lambda: MosquittoServer(tmp_path))


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[VictoriaMetricsServer]:
    """A running VictoriaMetrics that stores a repeated sample once."""
    yield from _running(lambda: VictoriaMetricsServer(tmp_path))


@pytest.fixture
def influxdb1(tmp_path: Path) -> Iterator[InfluxDB1Server]:
    """A running InfluxDB 1.x without authentication."""
    yield from _running(lambda: InfluxDB1Server(tmp_path))


@pytest.fixture
def influxdb1_auth(tmp_path: Path) -> Iterator[InfluxDB1Server]:
    """A running InfluxDB 1.x with authentication on and an admin `admin` / `admin-secret`."""
    yield from _running(lambda: InfluxDB1Server(tmp_path, admin=("admin", "admin-secret")))


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerServer]:
    """A running Alertmanager, clustering off, with a receiver that sends nothing."""
    yield from _running(lambda: AlertmanagerServer(tmp_path))


@pytest.fixture
def closed_port() -> int:
    """A loopback port that nothing listens on, for connection-refused tests."""
    return free_port()
