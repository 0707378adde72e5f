"""Scenario files: time-scripted events laid over the stations' healthy signals.

A scenario is YAML, validated here (unknown keys fail, naming their path). Times are offsets from
the start of the run (`at`), lengths are durations (`duration`; absent = to the end of the run),
both written `90s`, `10m`, `1h30m`, `1d`, a number of seconds or ISO 8601 (`PT10M`). Events:

- `pollution`: a slug of `deltas` added to the concentrations, released from `at` for `duration`.
  Network form (use this): `origin` is where it enters, `{river, chainage_km}` or `{between:
  [upstream station, downstream station], fraction: 0.5}` (that share of the river distance from
  the first); it reaches every water-quality station below along the registry's river network
  (config/network.py), crossing confluences into the receiving river, after the network's travel
  time, diluted by the confluences' flow shares and decayed by `decay_per_h` (k per hour per code)
  as the incident tracker's forecast assumes (simulators/spills.py). Legacy forms: the stations
  named in downstream order (`stations`), or every station of a `river` in the direction it
  `flows` (straight-line distance / `velocity_m_s`, or `travel_time`, per leg; `dilution` per
  leg); the network form refuses these keys. Either way the slug lengthens by `spread` per
  station passed.
- `storm`: rain of `intensity_mm_h` on stations; level, turbidity and flow respond.
- `drift` (`rate_per_hour` added per hour), `stuck` (the value at `at`, held), `flag` (readings
  carry `flag` M, C, D... with the values still sent): sensor faults on some or all parameters.
  `spike`: one station's readings read `deltas` high for `duration`, the water unchanged (a
  fault that looks like a spill at one section and nowhere else).
- `silence`: the station sends nothing. `clock_skew`: its timestamps are off by `offset`.
- `bad_payloads`: a share `rate` of messages become malformed, oversized, duplicated or sent
  out of order (after the station's next message).

`expect` lists the alerts a correct daemon raises: rule kind, station, parameter, and the time
since the start within which it should fire (and, with `resolved_within`, resolve).
`expect_incidents` lists every incident a correct incident tracker (alerts/incidents) opens, on
the registry's network with the simulated report intervals: the `item`; the `origin` reach (its
`river`, the clean `upstream` bounding stations on every branch, the first exceeding station
`downstream`); the `stations` it reaches in arrival order; optionally `within` (the first
exceedance, since the start) and `eta_tolerance` (1 h: how close each later station's forecast
arrival, made before it exceeded, is to its first exceedance); and for a one-station incident
the clean next section that marks it `not_seen_downstream` (a data problem, not a spill).
An empty list states that none opens. `length` is how long a run takes to play it all out.

Example:
    name: jialing-spill
    report_interval: 30m
    length: 16h
    events:
      - {type: pollution, origin: {between: [cq-jl-beiwenquan, cq-jl-daxigou]}, at: 1h,
         duration: 3h, deltas: {nh3n: 4.0}}
      - {type: storm, stations: [cq-hy-cuntan], at: 0s, duration: 3h, intensity_mm_h: 60}
      - {type: flag, station: cq-wj-wulong, flag: M, at: 1h, duration: 30m}
      - {type: bad_payloads, rate: 0.01}
    expect:
      - {rule: water_quality, station: cq-jl-daxigou, parameter: nh3n, within: 10h}
    expect_incidents:
      - {item: nh3n, origin: {river: 嘉陵江, upstream: [cq-jl-beiwenquan], downstream: cq-jl-daxigou},
         stations: [cq-jl-daxigou, cq-cj-cuntan], within: 10h, eta_tolerance: 1h}
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, PositiveFloat, TypeAdapter, model_validator

from config.types import StrictModel
from ingest.model import DataFlag

_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIMEDELTA: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def parse_duration(value: Any) -> timedelta:
    """`90s`, `10m`, `1h30m`, `1d`, `1w`, a number of seconds, ISO 8601 or a timedelta."""
    if isinstance(value, str) and _DURATION.fullmatch(value.strip()):
        parts = _DURATION_PART.findall(value)
        return timedelta(seconds=sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts))
    return _TIMEDELTA.validate_python(value)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
BadPayloadKind = Literal["malformed", "oversized", "duplicate", "out_of_order"]
# Defaults to a size no sane ingestion limit admits (1 MiB + 1 byte).
DEFAULT_OVERSIZED_BYTES = 1024 * 1024 + 1


class _Event(StrictModel):
    at: Duration = Field(timedelta(0), description="Start, as an offset from the start of the run.")
    duration: Duration | None = Field(None, description="Length; absent means until the run ends.")

    def active(self, since_start: timedelta) -> bool:
        return self.at <= since_start and (self.duration is None or since_start < self.at + self.duration)


class SpillOrigin(StrictModel):
    """Where a spill enters the network: a place on a river, or part of the way between two stations."""

    river: str | None = Field(None, min_length=1, description="The river (with chainage_km).")
    chainage_km: float | None = Field(None, ge=0, description="Position along the river, km (with river).")
    between: tuple[str, str] | None = Field(
        None, description="Two stations, the upstream one first: the spill enters between them."
    )
    fraction: float = Field(
        0.5, gt=0, lt=1, description="With between: the share of the river distance from the first."
    )

    @model_validator(mode="after")
    def _one_place(self) -> SpillOrigin:
        on_river = self.river is not None or self.chainage_km is not None
        if on_river == (self.between is not None):
            raise ValueError("give either river and chainage_km, or between: [upstream, downstream]")
        if on_river and (self.river is None or self.chainage_km is None):
            raise ValueError("give both river and chainage_km")
        if self.between is None and "fraction" in self.model_fields_set:
            raise ValueError("fraction goes with between")
        return self


# Fields of the station-list form that the network form (`origin`) replaces with the network's own.
_LEGACY_PATH_FIELDS = ("flows", "velocity_m_s", "travel_time", "dilution")


class PollutionEvent(_Event):
    type: Literal["pollution"]
    origin: SpillOrigin | None = Field(
        None, description="Network form: where the spill enters; it follows the registry's river network."
    )
    stations: list[str] | None = Field(None, min_length=1, description="Stations in downstream order.")
    river: str | None = Field(None, description="Every station on this river, ordered by `flows`.")
    flows: Literal["east", "west", "north", "south"] = Field("east", description="Direction of the river.")
    deltas: dict[str, float] = Field(min_length=1, description="Added to each code at the first station.")
    velocity_m_s: PositiveFloat = Field(1.0, description="Travel speed of the slug between stations.")
    travel_time: Duration | None = Field(None, description="Fixed travel time per leg, overrides velocity.")
    dilution: float = Field(0.6, gt=0, le=1, description="Share of the slug left after each leg.")
    spread: float = Field(0.2, ge=0, description="Relative lengthening of the slug per station passed.")
    decay_per_h: dict[str, float] = Field(
        {}, description="Network form: first-order decay k (1/h) per code over the travel time."
    )

    @model_validator(mode="after")
    def _one_path(self) -> PollutionEvent:
        if sum(x is not None for x in (self.origin, self.stations, self.river)) != 1:
            raise ValueError("give one of origin (network form), stations (in downstream order) or river")
        if self.duration is None:
            raise ValueError("a pollution event needs a duration")
        if self.origin is not None:
            legacy = sorted(set(_LEGACY_PATH_FIELDS) & self.model_fields_set)
            if legacy:
                raise ValueError(
                    f"{', '.join(legacy)}: the network form (origin) takes travel times and dilution from "
                    "the registry's network; remove them"
                )
        elif self.decay_per_h:
            raise ValueError("decay_per_h goes with origin (the network form)")
        if any(k < 0 for k in self.decay_per_h.values()):
            raise ValueError("decay_per_h: a decay rate cannot be negative")
        return self


class StormEvent(_Event):
    type: Literal["storm"]
    stations: list[str] = Field(min_length=1)
    intensity_mm_h: PositiveFloat = Field(description="Rain intensity over the storm.")

    @model_validator(mode="after")
    def _bounded(self) -> StormEvent:
        if self.duration is None:
            raise ValueError("a storm needs a duration")
        return self


class _SensorEvent(_Event):
    station: str
    parameters: list[str] | None = Field(
        None, description="Affected codes; all of the station's when absent."
    )


class DriftEvent(_SensorEvent):
    type: Literal["drift"]
    rate_per_hour: float = Field(description="Added to the reading per hour since `at`, in its unit.")


class StuckEvent(_SensorEvent):
    type: Literal["stuck"]


class FlagEvent(_SensorEvent):
    type: Literal["flag"]
    flag: DataFlag = Field(description="HJ 212 data flag: M maintenance, C calibration, D fault...")


class SpikeEvent(_Event):
    type: Literal["spike"]
    station: str
    deltas: dict[str, float] = Field(min_length=1, description="Added to the station's readings only.")

    @model_validator(mode="after")
    def _bounded(self) -> SpikeEvent:
        if self.duration is None:
            raise ValueError("a spike needs a duration")
        return self


class SilenceEvent(_Event):
    type: Literal["silence"]
    station: str


class ClockSkewEvent(_Event):
    type: Literal["clock_skew"]
    station: str
    offset: Duration = Field(description="Added to the timestamps the station sends (negative: behind).")

    @model_validator(mode="before")
    @classmethod
    def _signed_offset(cls, data: Any) -> Any:
        # `-2h` is not a duration to the parser; allow a leading minus on the compact form.
        if isinstance(data, dict) and isinstance(data.get("offset"), str) and data["offset"].startswith("-"):
            data = {**data, "offset": -parse_duration(data["offset"][1:])}
        return data


class BadPayloadsEvent(_Event):
    type: Literal["bad_payloads"]
    rate: float = Field(gt=0, le=1, description="Share of messages spoiled.")
    kinds: list[BadPayloadKind] = Field(
        ["malformed", "oversized", "duplicate", "out_of_order"], min_length=1, description="Chosen evenly."
    )
    stations: list[str] | None = Field(None, description="Only these stations; all when absent.")
    oversized_bytes: int = Field(DEFAULT_OVERSIZED_BYTES, gt=0, description="Size of an oversized payload.")


Event = Annotated[
    PollutionEvent
    | StormEvent
    | DriftEvent
    | StuckEvent
    | FlagEvent
    | SpikeEvent
    | SilenceEvent
    | ClockSkewEvent
    | BadPayloadsEvent,
    Field(discriminator="type"),
]


class ExpectedAlert(StrictModel):
    """An alert a correct daemon raises for this scenario."""

    rule: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Rule name, e.g. water_quality.")
    station: str
    parameter: str | None = None
    within: Duration = Field(description="Fires at most this long after the start of the run.")
    resolved_within: Duration | None = Field(None, description="Resolves at most this long after the start.")


class ExpectedOrigin(StrictModel):
    """The origin reach an incident names: between its first station and the clean ones above it."""

    river: str = Field(min_length=1, description="River of the reach's downstream station.")
    upstream: list[str] = Field(
        [], description="Bounding stations above, on every branch, any order; none: from the river's top."
    )
    downstream: str = Field(description="The first exceeding station.")


class ExpectedIncident(StrictModel):
    """An incident a correct tracker opens for this scenario."""

    item: str = Field(min_length=1, description="Parameter code, e.g. nh3n.")
    origin: ExpectedOrigin = Field(description="The estimated origin reach.")
    stations: list[str] = Field(
        min_length=1,
        description="Stations where it exceeds, in arrival (flow) order, the first the origin's.",
    )
    within: Duration | None = Field(
        None, description="The first station exceeds at most this long after the start."
    )
    eta_tolerance: Duration = Field(
        timedelta(hours=1),
        description="Each later station's forecast arrival (before it exceeded) is this close to its first "
        "exceedance.",
    )
    not_seen_downstream: str | None = Field(
        None,
        description="A one-station incident: the next section below, clean when the plume should have come "
        "(a data problem, never confirmed).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ExpectedIncident:
        if self.stations[0] != self.origin.downstream:
            raise ValueError("the first station is the origin reach's downstream station")
        if len(set(self.stations)) != len(self.stations):
            raise ValueError("a station is listed twice")
        if self.not_seen_downstream is not None and len(self.stations) != 1:
            raise ValueError("not_seen_downstream goes with a one-station incident")
        return self

    def station_ids(self) -> set[str]:
        return {*self.stations, *self.origin.upstream, self.origin.downstream} | (
            {self.not_seen_downstream} if self.not_seen_downstream else set()
        )


class Scenario(StrictModel):
    """A scenario file."""

    name: str = Field(min_length=1)
    description: str | None = None
    stations: list[str] | None = Field(None, description="Simulate only these stations; all when absent.")
    report_interval: Duration | None = Field(None, description="Reporting interval of every station.")
    report_intervals: dict[str, Duration] = Field({}, description="Per-station reporting intervals.")
    length: Duration | None = Field(None, description="How long a run takes to play out the expectations.")
    events: list[Event] = Field([], description="What happens, when.")
    expect: list[ExpectedAlert] = Field([], description="Alerts a correct daemon raises.")
    expect_incidents: list[ExpectedIncident] | None = Field(
        None,
        description="Every incident a correct tracker opens (an empty list: none); absent: not stated.",
    )

    def station_ids(self) -> set[str]:
        """Every station id the scenario names, to check against the registry."""
        named = set(self.stations or ()) | set(self.report_intervals)
        for event in self.events:
            named.update(getattr(event, "stations", None) or ())
            origin = getattr(event, "origin", None)
            if origin is not None and origin.between is not None:
                named.update(origin.between)
            station = getattr(event, "station", None)
            if station is not None:
                named.add(station)
        named.update(e.station for e in self.expect)
        for incident in self.expect_incidents or ():
            named |= incident.station_ids()
        return named

    @classmethod
    def quiet(cls) -> Scenario:
        """No events: the stations' healthy signals only."""
        return cls(name="quiet")


def load_scenario(path: Path) -> Scenario:
    """Load and validate a scenario file."""
    with path.open(encoding="utf-8") as fh:
        return Scenario.model_validate(yaml.safe_load(fh))


SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
