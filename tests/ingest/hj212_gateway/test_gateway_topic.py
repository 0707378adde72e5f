"""The topic the standalone gateway publishes on: `hj212/{mn}` by default, configurable for the
cluster mode's stations stream, with `{mn}` or `{station_id}` as one whole level."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ingest.sources.hj212_gateway.config import GatewayPublishConfig


@pytest.mark.parametrize(
    "topic", ["hj212/{mn}", "ecowatch/v1/hj212/{mn}/packet", "{mn}", "ecowatch/v1/hj212/{station_id}/packet"]
)
def test_a_topic_with_one_mn_level_is_accepted(topic: str) -> None:
    """Any topic where `{mn}` is one whole level is accepted as written."""
    assert GatewayPublishConfig(topic=topic).topic == topic


@pytest.mark.parametrize(
    "topic",
    [
        "hj212",
        "/hj212/{mn}",
        "hj212//{mn}",
        "hj212/{mn}/",
        "hj212/+/{mn}",
        "hj212/#/{mn}",
        "hj212/x{mn}",
        "hj212/{mn}/{mn}",
        "hj212/{other}/{mn}",
    ],
)
def test_a_topic_without_exactly_one_whole_mn_level_is_refused(topic: str) -> None:
    """No logger placeholder, two, a partial level, empty levels, wildcards or others: refused."""
    with pytest.raises(ValidationError):
        GatewayPublishConfig(topic=topic)
