"""Silences: mute notifications of alerts whose labels match, for a time window.

A silence has label matchers (an exact value, or `{"regex": ...}` matched against the whole
value, as Alertmanager anchors its regexes), a window [starts_at, ends_at), an author and a
reason. It never stops evaluation or recording: a silenced alert still changes state, its
transitions are still in the history, and its notification events are still written, with
`silenced: true`, so the audit trail is complete and the notifier side skips their delivery.
Reminders of a silenced alert are not written at all (they would add nothing to the trail);
when the silence ends and the alert still fires, one firing event (not silenced) is written.
Deleting a silence expires it (ends_at = now) and keeps it for the record.

Example (POST /api/v1/silences):
    {"matchers": {"station_id": "cq-jl-jinzi", "rule": {"regex": "compliance_.*|exceedance"}},
     "starts_at": "2026-07-01T08:00:00+08:00", "ends_at": "2026-07-01T12:00:00+08:00",
     "by": "duty officer Li", "reason": "planned dredging upstream"}
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import AwareDatetime, Field, field_validator, model_validator

from config.times import from_ns, to_ns
from config.types import StrictModel

# A silence is typed by an operator; these bounds only stop abuse of the API.
MAX_MATCHERS: Final = 16
MAX_PATTERN_CHARS: Final = 256


class RegexMatcher(StrictModel):
    regex: str = Field(
        min_length=1, max_length=MAX_PATTERN_CHARS, description="Matched against the whole value."
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class SilenceRequest(StrictModel):
    """The body of POST /api/v1/silences."""

    matchers: dict[str, str | RegexMatcher] = Field(
        min_length=1, max_length=MAX_MATCHERS, description="Label → exact value or {regex: pattern}."
    )
    starts_at: AwareDatetime | None = Field(None, description="Start; now when absent.")
    ends_at: AwareDatetime = Field(description="End of the silence.")
    by: str = Field(min_length=1, max_length=128, description="Who silences.")
    reason: str = Field(min_length=1, max_length=1024, description="Why.")

    @model_validator(mode="after")
    def _ordered(self) -> SilenceRequest:
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    value: str
    regex: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.regex:
            return re.fullmatch(self.value, actual) is not None
        return actual == self.value

    def to_json(self) -> str | dict[str, str]:
        return {"regex": self.value} if self.regex else self.value


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_ns: int
    ends_ns: int
    created_by: str
    reason: str
    created_ns: int

    def active(self, now_ns: int) -> bool:
        return self.starts_ns <= now_ns < self.ends_ns

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def to_json(self, now_ns: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "matchers": {m.label: m.to_json() for m in self.matchers},
            "starts_at": _iso(self.starts_ns),
            "ends_at": _iso(self.ends_ns),
            "by": self.created_by,
            "reason": self.reason,
            "created_at": _iso(self.created_ns),
        }
        if now_ns is not None:
            out["status"] = (
                "active" if self.active(now_ns) else "pending" if now_ns < self.starts_ns else "expired"
            )
        return out

    @classmethod
    def from_request(cls, request: SilenceRequest, now: datetime) -> Silence:
        now_ns = to_ns(now)
        return cls(
            id=uuid.uuid4().hex,
            matchers=tuple(
                Matcher(label, value.regex, True)
                if isinstance(value, RegexMatcher)
                else Matcher(label, value)
                for label, value in request.matchers.items()
            ),
            starts_ns=to_ns(request.starts_at) if request.starts_at is not None else now_ns,
            ends_ns=to_ns(request.ends_at),
            created_by=request.by,
            reason=request.reason,
            created_ns=now_ns,
        )


def silenced_by(silences: list[Silence], labels: Mapping[str, str], now_ns: int) -> Silence | None:
    """The first active silence that matches the labels, if any."""
    for silence in silences:
        if silence.active(now_ns) and silence.matches(labels):
            return silence
    return None


def _iso(value: int) -> str:
    return from_ns(value).isoformat()
