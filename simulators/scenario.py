"""Scenario files: time-scripted events laid over the stations' healthy signals.

A scenario is YAML, validated here (unknown keys fail, naming their path). Times are offsets from
the start of the run (`at`), lengths are durations (`duration`; absent = to the end of the run),
both written `90s`, `10m`, `1h30m`, `1d`, a number of seconds or ISO 8601 (`PT10M`). Events:

- `pollution`: a slug entering a river at the first listed station, reaching each next station
  after the travel time of the leg (distance / `velocity_m_s`, or `travel_time`), diluted by
  `dilution` per leg and spread by `spread` per leg; `deltas` are added to the concentrations.
  Name the stations in downstream order, or give `river` and the direction it `flows`.
- `storm`: rain of `intensity_mm_h` on stations; level, turbidity and flow respond.
- `drift` (`rate_per_hour` added per hour), `stuck` (the value at `at`, held), `flag` (readings
  carry `flag` M, C, D... with the values still sent): sensor faults on some or all parameters.
- `silence`: the station sends nothing. `clock_skew`: its timestamps are off by `offset`.
- `bad_payloads`: a share `rate` of messages become malformed, oversized, duplicated or sent
  out of order (after the station's next message).

`expect` lists the alerts a correct daemon raises: rule kind, station, parameter, and the time
since the start within which it should fire (and, with `resolved_within`, resolve).

Example:
    name: jialing-spill
    report_interval: 30s
    events:
      - {type: pollution, at: 2m, duration: 10m, stations: [cq-jl-jinzi, cq-jl-beiwenquan],
         deltas: {nh3n: 2.0}, travel_time: 5m, dilution: 0.6}
      - {type: storm, stations: [cq-hy-cuntan], at: 0s, duration: 3h, intensity_mm_h: 60}
      - {type: flag, station: cq-wj-wulong, flag: M, at: 1h, duration: 30m}
      - {type: bad_payloads, rate: 0.01}
    expect:
      - {rule: water_quality, station: cq-jl-jinzi, parameter: nh3n, within: 10m}
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


class PollutionEvent(_Event):
    type: Literal["pollution"]
    stations: list[str] | None = Field(None, min_length=1, description="Stations in downstream order.")
    river: str | None = Field(None, description="Every station on this river, ordered by `flows`.")
    flows: Literal["east", "west", "north", "south"] = Field("east", description="Direction of the river.")
    deltas: dict[str, float] = Field(min_length=1, description="Added to each code at the first station.")
    velocity_m_s: PositiveFloat = Field(1.0, description="Travel speed of the slug between stations.")
    travel_time: Duration | None = Field(None, description="Fixed travel time per leg, overrides velocity.")
    dilution: float = Field(0.6, gt=0, le=1, description="Share of the slug left after each leg.")
    spread: float = Field(0.2, ge=0, description="Relative lengthening of the slug per leg.")

    @model_validator(mode="after")
    def _one_path(self) -> PollutionEvent:
        if (self.stations is None) == (self.river is None):
            raise ValueError("give either stations (in downstream order) or river")
        if self.duration is None:
            raise ValueError("a pollution event needs a duration")
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


class Scenario(StrictModel):
    """A scenario file."""

    name: str = Field(min_length=1)
    description: str | None = None
    stations: list[str] | None = Field(None, description="Simulate only these stations; all when absent.")
    report_interval: Duration | None = Field(None, description="Reporting interval of every station.")
    report_intervals: dict[str, Duration] = Field({}, description="Per-station reporting intervals.")
    events: list[Event] = Field([], description="What happens, when.")
    expect: list[ExpectedAlert] = Field([], description="Alerts a correct daemon raises.")

    def station_ids(self) -> set[str]:
        """Every station id the scenario names, to check against the registry."""
        named = set(self.stations or ()) | set(self.report_intervals)
        for event in self.events:
            named.update(getattr(event, "stations", None) or ())
            station = getattr(event, "station", None)
            if station is not None:
                named.add(station)
        named.update(e.station for e in self.expect)
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
