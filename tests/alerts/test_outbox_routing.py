"""Routing: Alertmanager-style matchers, severities, route order and `continue`, default receivers."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from pydantic import ValidationError

from alerts.notify_config import NotifyConfig
from alerts.routing import Matcher, RouteConfig, Router
from tests.alerts.notifiers.fake_receiver import make_event

LABELS = {"station_id": "cq-jl-001", "district": "Yuzhong", "parameter": "nh3n"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("district=Yuzhong", True),
        ('district="Yuzhong"', True),
        ("district!=Yuzhong", False),
        ("district=~Yu.*", True),
        ("district=~zhong", False),  # anchored: the whole value must match
        ("district!~Jiangbei|Nanan", True),
        ("basin=", True),  # a missing label is the empty string
        ("basin!=", False),
        (" parameter = nh3n ", True),
    ],
)
def test_matcher_semantics(text: str, matches: bool) -> None:
    """=, !=, =~ and !~ behave as in Alertmanager, regexes anchored, absent labels empty."""
    assert Matcher.parse(text).matches(LABELS) is matches


@pytest.mark.parametrize("text", ["district", "=x", "district=~(", "9lives=1"])
def test_bad_matchers_fail_at_load(text: str) -> None:
    """A matcher that does not parse, or a bad regex, is a configuration error."""
    with pytest.raises(ValidationError):
        RouteConfig.model_validate({"receivers": ["r"], "matchers": [text]})


def _router(*routes: Mapping[str, object], default: list[str] | None = None) -> Router:
    return Router([RouteConfig.model_validate(r) for r in routes], ["duty", "city", "archive"], default)


def test_first_matching_route_wins_unless_it_continues() -> None:
    """Routes are tried in order; `continue: true` goes on to the next matching route."""
    critical = make_event(1, severity="critical", labels=LABELS)
    warning = make_event(2, severity="warning", labels=LABELS)
    router = _router(
        {"severities": ["critical"], "receivers": ["duty"], "continue": True},
        {"matchers": ["district=Yuzhong"], "receivers": ["city"]},
        {"matchers": ["rule=exceedance"], "receivers": ["archive"]},
    )

    assert router.receivers_for(critical) == ["duty", "city"]
    assert router.receivers_for(warning) == ["city"]


def test_event_fields_are_matchable() -> None:
    """rule, kind, status, severity and alert_id can be matched like labels."""
    router = _router({"matchers": ["status=resolved", "alert_id=a3"], "receivers": ["duty"]}, default=[])

    assert router.receivers_for(make_event(3, status="resolved")) == ["duty"]
    assert router.receivers_for(make_event(3)) == []


def test_unmatched_events_go_to_the_default_receivers() -> None:
    """No matching route: every receiver by default, the listed ones when set, none for []."""
    event = make_event(1, labels={"district": "Jiangbei"})
    route = {"matchers": ["district=Yuzhong"], "receivers": ["duty"]}

    assert _router(route).receivers_for(event) == ["duty", "city", "archive"]
    assert _router(route, default=["archive"]).receivers_for(event) == ["archive"]
    assert _router(route, default=[]).receivers_for(event) == []


def test_config_refuses_unknown_and_duplicate_receivers() -> None:
    """Routes and default_receivers must name configured receivers; names must be unique."""
    hook = {"type": "webhook", "name": "a", "url": "http://127.0.0.1:1/", "secret": "s" * 16}
    with pytest.raises(ValidationError, match=r"routes\.0\.receivers: no receiver named \['b'\]"):
        NotifyConfig.model_validate({"receivers": [hook], "routes": [{"receivers": ["b"]}]})
    with pytest.raises(ValidationError, match="default_receivers: no receiver named"):
        NotifyConfig.model_validate({"receivers": [hook], "default_receivers": ["c"]})
    with pytest.raises(ValidationError, match="unique"):
        NotifyConfig.model_validate({"receivers": [hook, hook]})
