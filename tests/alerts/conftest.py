"""Fixtures of the notification tests: one fake clock shared by the dispatcher and a receiver that
plays every channel's rules (tests/alerts/notifiers/channel_receiver.py) on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerts.notifiers.channel_receiver import DINGTALK_SECRET, WEBHOOK_KEY, ChannelReceiver
from tests.alerts.notifiers.fake_receiver import FakeClock, FakeReceiver


@pytest.fixture
def clock() -> FakeClock:
    """The one clock of the dispatcher and the receiver."""
    return FakeClock()


@pytest.fixture
def channels(clock: FakeClock) -> ChannelReceiver:
    """The services' behaviour, on the fake clock."""
    return ChannelReceiver(clock, webhook_key=WEBHOOK_KEY, dingtalk_secret=DINGTALK_SECRET)


@pytest.fixture
def server(channels: ChannelReceiver) -> Iterator[FakeReceiver]:
    """A loopback HTTP server answering as `channels` says."""
    http = FakeReceiver()
    http.responder = channels
    http.start()
    yield http
    http.stop()
