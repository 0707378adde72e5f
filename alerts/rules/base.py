"""What every rule shares: its config base, the view it evaluates, and the finding it returns.

A rule is pure: it reads a `View` (the instant, the standard, the registry and the stations'
windows) and returns `Finding`s, one per alert identity it has an opinion on, each with a
`Condition`: FIRING (the alert condition holds), CLEAR (the recovery condition holds) or HOLD
(neither: in the hysteresis band between the two, or not enough data to tell). Pending durations,
recovery counting, flap damping and notifications are the engine's (`alerts.lifecycle`).

Rule settings every kind accepts (unset ones come from the `defaults` section, `alerts.config`):

    - name: compliance_drop        # unique; the `rule` label and the alert identity
      kind: compliance_drop
      severity: critical           # info | warning | critical
      labels: {team: water}        # added to every alert of the rule
      for: PT5M                    # pending: the condition must hold this long before firing
      recovery: {samples: 2, duration: PT30M}   # hysteresis: both must hold to resolve
      renotify_interval: PT4H      # reminder while firing (PT0S: never)
      min_refire_interval: PT30M   # flap damping: no new firing notice sooner after a resolved one
      match: {basin: 长江}          # only stations whose labels equal these
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Final, Literal, Protocol

from pydantic import ConfigDict, Field, field_validator

from alerts.classify import Classification, classify
from alerts.windows import Evidence, StationWindow
from config.registry import Station, WaterClass
from config.standards import Standard
from config.times import ns
from config.types import StrictModel

Severity = Literal["info", "warning", "critical"]
StationLabel = Literal["station_id", "district", "basin", "river", "water_body"]
GroupBy = Literal["district", "basin", "river"]
# Labels the engine sets itself; rule labels may not shadow them.
RESERVED_LABELS: Final = frozenset(
    {
        "rule",
        "kind",
        "severity",
        "category",
        "station_id",
        "parameter",
        "district",
        "basin",
        "river",
        "alertname",
    }
)


class Condition(StrEnum):
    FIRING = "firing"
    CLEAR = "clear"
    HOLD = "hold"


class Scope(StrEnum):
    """When the engine evaluates a rule and at which instant.

    STATION: per station on each new reading (at its time) and on ticks (at the station's time:
    now, but not further than one report interval past its newest reading, so a backlog being
    replayed is judged on its own clock). CLOCK: the same, but ticks use the wall clock (silence).
    REGION: over all stations, on ticks, at the wall clock. STREAM: per station after each new
    event time, from its period values (`alerts.station_values`; `judge` instead of `evaluate`),
    at the station's time. PERIOD: over regions' period figures
    (compliance rate, class I–III share), after each daily assessment (`judge` instead of `evaluate`).
    """

    STATION = "station"
    CLOCK = "clock"
    REGION = "region"
    STREAM = "stream"
    PERIOD = "period"


class RecoveryConfig(StrictModel):
    """Hysteresis: how long the recovery condition must hold before an alert resolves."""

    samples: int = Field(1, ge=1, description="Consecutive new samples meeting the recovery condition.")
    duration: timedelta = Field(
        timedelta(0), description="...and for at least this long (station time); both must hold."
    )


class RuleConfigBase(StrictModel):
    """Settings every rule kind accepts; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64, description="Unique rule name.")
    severity: Severity = Field("warning", description="info, warning or critical.")
    labels: dict[str, str] = Field({}, description="Labels added to every alert of this rule.")
    pending: timedelta | None = Field(
        None, alias="for", description="How long the condition must hold before firing; default: defaults."
    )
    recovery: RecoveryConfig | None = Field(None, description="Recovery hysteresis; default: defaults.")
    renotify_interval: timedelta | None = Field(
        None, description="Reminder interval while firing, PT0S for none; default: defaults."
    )
    min_refire_interval: timedelta | None = Field(
        None, description="Flap damping: minimum time from a resolved notice to the next firing notice."
    )
    match: dict[StationLabel, str] = Field(
        {}, description="Evaluate only stations whose labels equal these values."
    )

    @field_validator("labels")
    @classmethod
    def _labels_not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(RESERVED_LABELS & value.keys())
        if taken:
            raise ValueError(f"labels set by the engine cannot be overridden: {', '.join(taken)}")
        return value

    def applies_to(self, station: Station) -> bool:
        labels = station_labels(station)
        return all(labels.get(key) == value for key, value in self.match.items())


def station_labels(station: Station) -> dict[str, str]:
    return {
        "station_id": station.id,
        "district": station.district,
        "basin": station.basin,
        "river": station.river,
        "water_body": station.water_body,
    }


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's verdict on one alert identity.

    The identity is the rule plus `station_id`, `parameter` and `group` (label, value) — never a
    value. `observed_ns` is the newest reading behind the verdict: recovery counts a sample only
    when it advances. `context` holds extra facts for the history (a region's station classes).
    """

    condition: Condition
    observed_ns: int | None
    summary: str
    description: str
    station_id: str | None = None
    parameter: str | None = None
    group: tuple[str, str] | None = None
    values: Mapping[str, float] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    water_class: str | None = None
    primary_pollutants: tuple[str, ...] = ()
    context: Mapping[str, str] = field(default_factory=dict)
    severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class PointStatus:
    """A station's class from its values, with the values (evidence) that decided it."""

    classification: Classification
    evidence: dict[str, Evidence]

    @property
    def observed_ns(self) -> int | None:
        return max((e.time_ns for e in self.evidence.values()), default=None)


def point_status(
    standard: Standard,
    station: Station,
    window: StationWindow,
    at_ns: int,
    *,
    window_ns: int | None,
    max_age_ns: int,
) -> PointStatus | None:
    """The station's GB 3838 class as of `at_ns`, or None when no assessed item has a value."""
    evidence = window.values(
        tuple(code for code in standard.items if code in window.latest),
        at_ns,
        window_ns=window_ns,
        max_age_ns=max_age_ns,
    )
    result = classify(
        standard, {code: e.value for code, e in evidence.items()}, station.water_body, station.target_class
    )
    if result.water_class is None:
        return None
    return PointStatus(result, evidence)


@dataclass(frozen=True, slots=True)
class View:
    """What a rule may look at: the instant, the standard, the registry and the windows.

    `station_id` names the station under evaluation (STATION and CLOCK scopes). `started_ns` is
    when this engine process started: silence counts from it at the earliest. `statuses` caches
    `point_status` results for the regional rules of one tick, which share the stations.
    """

    at_ns: int
    standard: Standard
    registry: Mapping[str, Station]
    windows: Mapping[str, StationWindow]
    started_ns: int
    station_id: str | None = None
    statuses: dict[tuple[str, int | None, int], PointStatus | None] = field(default_factory=dict)

    @property
    def station(self) -> Station:
        assert self.station_id is not None, "a station rule evaluated without a station"
        return self.registry[self.station_id]

    @property
    def window(self) -> StationWindow:
        assert self.station_id is not None, "a station rule evaluated without a station"
        return self.windows[self.station_id]


def class_name(water_class: WaterClass | None) -> str:
    return "?" if water_class is None else water_class.value


def fmt(value: float) -> str:
    """A value as an operator reads it: up to four significant digits, no float noise."""
    return f"{value:.4g}"


def item_label(standard: Standard, code: str) -> str:
    """`氨氮 ammonia nitrogen (nh3n)` for a standard item, the bare code otherwise."""
    item = standard.items.get(code)
    return code if item is None else f"{item.name_zh} {item.name_en} ({code})"


def unit_of(standard: Standard, code: str) -> str:
    return standard.unit_of(code) if code in standard.items else ""


@dataclass(frozen=True, slots=True)
class RegionPoints:
    """The water-quality stations of one region and their current status (None: no class)."""

    label: str
    value: str
    points: tuple[tuple[Station, PointStatus | None], ...]

    @property
    def assessed(self) -> list[tuple[Station, PointStatus]]:
        return [(s, p) for s, p in self.points if p is not None]

    @property
    def observed_ns(self) -> int | None:
        return max((p.observed_ns or 0 for _, p in self.assessed), default=None)

    def context(self) -> dict[str, str]:
        """Each station's class and target, for the history: `{"cq-jl-jinzi": "劣V (target II)"}`."""
        return {
            s.id: "no data"
            if p is None
            else f"{class_name(p.classification.water_class)} (target {s.target_class.value})"
            for s, p in self.points
        }


def region_points(
    view: View,
    config: RuleConfigBase | RegionRuleConfig,
    group_by: GroupBy,
    *,
    window_ns: int | None,
    max_age_ns: int,
) -> list[RegionPoints]:
    """The water-quality stations the rule matches, grouped by `group_by`, each with its class."""
    groups: dict[str, list[tuple[Station, PointStatus | None]]] = {}
    for station in view.registry.values():
        if "water" not in station.kinds or not config.applies_to(station):
            continue
        key = (station.id, window_ns, max_age_ns)
        if key not in view.statuses:
            window = view.windows.get(station.id)
            view.statuses[key] = (
                None
                if window is None
                else point_status(
                    view.standard, station, window, view.at_ns, window_ns=window_ns, max_age_ns=max_age_ns
                )
            )
        status = view.statuses[key]
        groups.setdefault(station_labels(station)[group_by], []).append((station, status))
    return [RegionPoints(group_by, value, tuple(points)) for value, points in groups.items()]


class StationFilter(Protocol):
    def applies_to(self, station: Station) -> bool: ...


class RegionRuleConfig(StationFilter, Protocol):
    """What the regional rules share: how to group stations and which of them are judged."""

    @property
    def group_by(self) -> GroupBy: ...
    @property
    def min_stations(self) -> int: ...
    @property
    def window(self) -> timedelta | None: ...
    @property
    def max_age(self) -> timedelta: ...


def judged_regions(view: View, config: RegionRuleConfig) -> list[RegionPoints]:
    """The regions of `region_points` with at least `min_stations` classed stations."""
    window_ns = None if config.window is None else ns(config.window)
    regions = region_points(view, config, config.group_by, window_ns=window_ns, max_age_ns=ns(config.max_age))
    return [r for r in regions if len(r.assessed) >= config.min_stations]


def share_text(share: float) -> str:
    return f"{100 * share:.1f} %"
