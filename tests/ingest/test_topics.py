"""Topic templates: subscriptions, placeholder tags and refusal of unsafe topics."""

from __future__ import annotations

import pytest

from ingest.topics import TopicTemplate

DEFAULT = TopicTemplate.parse("ecowatch/v1/{district}/{station_id}/{kind}")


def test_subscription_replaces_placeholders_with_single_level_wildcards() -> None:
    """Each placeholder becomes `+`, literal levels stay."""
    assert DEFAULT.subscription == "ecowatch/v1/+/+/+"
    assert DEFAULT.placeholders == ("district", "station_id", "kind")


def test_match_returns_placeholder_values_as_tags() -> None:
    """A matching topic yields one tag per placeholder, UTF-8 values included."""
    assert DEFAULT.match("ecowatch/v1/渝中区/cq-1/water") == {
        "district": "渝中区",
        "station_id": "cq-1",
        "kind": "water",
    }


@pytest.mark.parametrize(
    "topic",
    [
        "ecowatch/v1/d/s",  # too short
        "ecowatch/v1/d/s/water/extra",  # too long
        "ecowatch/v2/d/s/water",  # literal differs
        "ecowatch/v1//s/water",  # empty value
        "ecowatch/v1/d/s\x00x/water",  # control character
    ],
)
def test_match_refuses_topics_that_do_not_fit(topic: str) -> None:
    """Topics of the wrong shape or with unsafe values do not match."""
    assert DEFAULT.match(topic) is None


def test_trailing_hash_matches_the_rest() -> None:
    """A trailing `#` accepts any remainder and adds no tags."""
    template = TopicTemplate.parse("hj212/{mn}/#")
    assert template.subscription == "hj212/+/#"
    assert template.match("hj212/123/a/b") == {"mn": "123"}


@pytest.mark.parametrize("bad", ["", "a//b", "a/#/b", "a/{x}/{x}", "a/pre{x}", "a/+"])
def test_parse_refuses_malformed_templates(bad: str) -> None:
    """Malformed templates fail at configuration time, not on the first message."""
    with pytest.raises(ValueError):  # noqa: PT011 - the messages are checked elsewhere
        TopicTemplate.parse(bad)
