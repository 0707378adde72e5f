"""Routing: which receivers a notification event goes to, by label matchers and severity.

Routes are tried in order, as Alertmanager's are: the first that matches sends the event to its
receivers and ends the search, unless it says `continue: true`. An event that no route matches
goes to `default_receivers` (every receiver when that is not set; `[]` sends it nowhere). An event
may also name receivers itself (`AlertEvent.receivers`: an incident's river chiefs, duty rooms and
intake operators from the river network); those that are configured get it as well.

A route matches when the event's severity is one of its `severities` (any, when empty) and every
matcher holds. Matchers use Alertmanager's syntax: `name=value`, `name!=value`, `name=~regex`,
`name!~regex`; regexes must match the whole value, and a label the event lacks has the value "".
They see the event's labels plus its `rule`, `kind`, `status`, `severity` and `alert_id`.

Example:
    notify:
      receivers:
        - {type: wecom, name: yuzhong-duty, webhook_key: "${WECOM_KEY}"}
        - {type: webhook, name: city-platform, url: "https://platform.example/hooks/ecowatch",
           secret: "${WEBHOOK_SECRET}"}
      routes:
        - {matchers: ['district="Yuzhong"'], severities: [critical], receivers: [yuzhong-duty],
           continue: true}
        - {matchers: ["rule=~exceedance|compliance_drop"], receivers: [city-platform]}
      default_receivers: [city-platform]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Self, cast

from pydantic import ConfigDict, Field, model_validator

from alerts.events import AlertEvent
from config.types import StrictModel

Operator = Literal["=", "!=", "=~", "!~"]
# Receiver names appear in routes, logs, the `receiver=` metric label and the API.
RECEIVER_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
_MATCHER: Final = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: Operator
    value: str
    pattern: re.Pattern[str] | None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """A matcher from `name=value`, `name!=value`, `name=~regex` or `name!~regex` (value maybe quoted)."""
        match = _MATCHER.match(text)
        if match is None:
            raise ValueError(f"matcher {text!r} is not name=value, name!=value, name=~regex or name!~regex")
        name, op, value = match.group(1), match.group(2), match.group(3)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise ValueError(f"matcher {text!r}: bad regex: {exc}") from None
        return cls(name, cast(Operator, op), value, pattern)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.pattern is not None:
            return (self.pattern.fullmatch(actual) is not None) == (self.op == "=~")
        return (actual == self.value) == (self.op == "=")


class RouteConfig(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)

    receivers: tuple[str, ...] = Field(min_length=1, description="Receivers (by name) the events go to.")
    matchers: tuple[str, ...] = Field((), description="All must hold, e.g. `district=Yuzhong`, `rule=~a|b`.")
    severities: tuple[str, ...] = Field((), description="Severities this route takes; any when empty.")
    continue_: bool = Field(
        False, alias="continue", description="Keep trying the routes after this one when it matches."
    )

    @model_validator(mode="after")
    def _parse_matchers(self) -> Self:
        for text in self.matchers:
            Matcher.parse(text)
        return self


@dataclass(frozen=True, slots=True)
class _Route:
    receivers: tuple[str, ...]
    matchers: tuple[Matcher, ...]
    severities: frozenset[str]
    continue_: bool

    def matches(self, event: AlertEvent, labels: Mapping[str, str]) -> bool:
        if self.severities and event.severity not in self.severities:
            return False
        return all(m.matches(labels) for m in self.matchers)


class Router:
    def __init__(
        self,
        routes: Sequence[RouteConfig],
        receivers: Sequence[str],
        default_receivers: Sequence[str] | None = None,
    ) -> None:
        self._routes = [
            _Route(
                r.receivers, tuple(Matcher.parse(m) for m in r.matchers), frozenset(r.severities), r.continue_
            )
            for r in routes
        ]
        self._default = tuple(receivers if default_receivers is None else default_receivers)
        self._known = frozenset(receivers)

    def receivers_for(self, event: AlertEvent) -> list[str]:
        """The receivers of an event, each once, in route order."""
        labels = {
            **event.labels,
            "rule": event.rule,
            "kind": event.kind,
            "status": event.status,
            "severity": event.severity,
            "alert_id": event.alert_id,
        }
        chosen: dict[str, None] = {}
        matched = False
        for route in self._routes:
            if route.matches(event, labels):
                matched = True
                chosen.update(dict.fromkeys(route.receivers))
                if not route.continue_:
                    break
        if not matched:
            chosen.update(dict.fromkeys(self._default))
        # Those the event names itself (an incident's responsible people), if configured.
        chosen.update(dict.fromkeys(r for r in event.receivers if r in self._known))
        return list(chosen)
