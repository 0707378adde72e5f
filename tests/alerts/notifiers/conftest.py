"""Fixtures of the notifier tests: a scripted HTTP receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerts.notifiers.fake_receiver import FakeReceiver


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    """A running `FakeReceiver` that accepts everything until told otherwise."""
    server = FakeReceiver().start()
    yield server
    server.stop()
