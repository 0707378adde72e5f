"""Scenario files: validation, durations, and the shipped scenarios against the demo registry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import simulators.scenario
from config.registry import Registry, Station
from simulators.scenario import SCENARIO_DIR, ClockSkewEvent, Scenario, load_scenario, parse_duration
from simulators.simulator import Simulator

SHIPPED = sorted(SCENARIO_DIR.glob("*.yaml"))


def test_the_shipped_scenarios_are_there() -> None:
    """The demo scenario and one per kind of event ship with the package."""
    assert {p.stem for p in SHIPPED} >= {"demo", "pollution", "storm", "faults", "bad-payloads"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenarios_fit_the_demo_registry(path: Path, demo_registry: Registry) -> None:
    """Every shipped scenario validates and names only stations, parameters and places the demo registry knows."""
    scenario = load_scenario(path)
    Simulator(demo_registry, scenario)
    assert scenario.events


def test_the_docstring_example_validates(demo_registry: Registry) -> None:
    """The `Example:` block of the scenario module is a valid scenario."""
    doc = simulators.scenario.__doc__ or ""
    example = doc.split("Example:\n", 1)[1]
    scenario = Scenario.model_validate(yaml.safe_load(example))
    Simulator(demo_registry, scenario)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("500ms", 0.5),
     ("PT10M", 600), (45, 45), ("1.5h", 5400)],
)  # fmt: skip
def test_durations_read_compact_iso_and_numbers(text: object, seconds: float) -> None:
    """Durations are written compactly, in ISO 8601 or as seconds."""
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_a_clock_skew_may_be_negative() -> None:
    """A clock running behind is written with a leading minus."""
    event = ClockSkewEvent.model_validate({"type": "clock_skew", "station": "a", "offset": "-1h30m"})
    assert event.offset == -timedelta(minutes=90)


def test_unknown_keys_fail_with_their_path() -> None:
    """A misspelt key is refused, naming where it is, instead of being ignored."""
    with pytest.raises(ValidationError, match=r"events\.0\.storm\.intensity"):
        Scenario.model_validate(
            {"name": "x", "events": [{"type": "storm", "stations": ["a"], "duration": "1h", "intensity": 5}]}
        )


@pytest.mark.parametrize(
    "event",
    [
        {"type": "pollution", "duration": "1h", "deltas": {"nh3n": 1}},
        {"type": "pollution", "duration": "1h", "deltas": {"nh3n": 1}, "river": "r", "stations": ["a"]},
        {"type": "pollution", "river": "r", "deltas": {"nh3n": 1}},
        {"type": "storm", "stations": ["a"], "intensity_mm_h": 10},
        {"type": "bad_payloads", "rate": 1.5},
        {"type": "flag", "station": "a", "flag": "X"},
        {"type": "earthquake"},
    ],
)
def test_inconsistent_events_are_refused(event: dict[str, object]) -> None:
    """Pollution needs one path and a length, storms a length, rates a share, flags an HJ 212 flag."""
    with pytest.raises(ValidationError):
        Scenario.model_validate({"name": "x", "events": [event]})


def test_a_scenario_naming_an_unknown_station_is_refused(demo_stations: list[Station]) -> None:
    """A typo in a station id fails when the simulator is built, not silently mid-run."""
    scenario = Scenario.model_validate(
        {"name": "x", "events": [{"type": "silence", "station": "cq-nowhere"}]}
    )
    with pytest.raises(ValueError, match="cq-nowhere"):
        Simulator(demo_stations, scenario)


def test_a_scenario_naming_an_unknown_parameter_is_refused(demo_stations: list[Station]) -> None:
    """Pollution deltas and sensor parameters must be catalogue codes."""
    scenario = Scenario.model_validate(
        {
            "name": "x",
            "events": [
                {"type": "drift", "station": "cq-cj-cuntan", "parameters": ["NH3"], "rate_per_hour": 1}
            ],
        }
    )
    with pytest.raises(ValueError, match="NH3"):
        Simulator(demo_stations, scenario)
