"""Alert configuration: the default rule set, the documented examples, and what is refused."""

from __future__ import annotations

import importlib
import textwrap
from types import ModuleType
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from alerts.config import DEFAULT_RULES, AlertsConfig, RuleDefaults, SchedulerConfig
from alerts.engine import policy_of
from alerts.rules import RULES
from alerts.rules.base import RecoveryConfig
from alerts.rules.class_share import ClassShareConfig
from alerts.silences import SilenceRequest

RULE_MODULES = [f"alerts.rules.{kind}" for kind in RULES]
CONFIG_MODULES = ["alerts.config", "alerts.service", *RULE_MODULES]


def _example(module: ModuleType) -> Any:
    """The YAML (or JSON) block under the `Example` line of a module docstring."""
    doc = module.__doc__ or ""
    _, _, block = doc.partition("\nExample")
    assert block, f"{module.__name__} has no Example block"
    body = block.split("\n", 1)[1]
    return yaml.safe_load(textwrap.dedent(body))


@pytest.mark.parametrize("name", CONFIG_MODULES)
def test_every_documented_example_validates(name: str) -> None:
    """Each component's Example block is a valid `alerts` section (or rules list)."""
    example = _example(importlib.import_module(name))
    section = example.get("alerts", example)
    AlertsConfig.model_validate(section)


def test_silence_example_validates() -> None:
    """The documented silence body is a valid request."""
    SilenceRequest.model_validate(_example(importlib.import_module("alerts.silences")))


def test_empty_section_gives_the_default_rule_set() -> None:
    """`alerts: {}` watches the water (one alert per station), missing data, silence, water levels and
    regional figures over the month; the instant-reading kinds are there for configs that name them."""
    config = AlertsConfig.model_validate({})
    assert config.rules == DEFAULT_RULES
    assert [r.name for r in config.rules] == [
        "water_quality",
        "no_valid_data",
        "silent_station",
        "warning_level",
        "guaranteed_level",
        "level_rise",
        "district_compliance",
        "basin_good_share",
    ]
    assert {r.kind for r in config.rules} == set(RULES) - {
        "class_share",
        "compliance_drop",
        "exceedance",
        "instrument_fault",
        "regional_compliance",
    }
    water = policy_of(config.rules[0], config.defaults)
    assert (water.pending_ns, water.recovery_samples) == (0, 2)  # learn at once, resolve on two clean values
    assert (config.basis, config.data_kinds) == ("daily", ("realtime",))


def test_rule_settings_fall_back_to_defaults() -> None:
    """A rule without `for` or `recovery` takes the defaults section; its own settings win."""
    config = AlertsConfig.model_validate(
        {
            "defaults": {
                "for": "PT5M",
                "recovery": {"samples": 3, "duration": "PT1H"},
                "renotify_interval": "PT0S",
            },
            "rules": [
                {"name": "a", "kind": "compliance_drop"},
                {"name": "b", "kind": "compliance_drop", "for": "PT1M", "recovery": {"samples": 1}},
            ],
        }
    )
    a, b = (policy_of(r, config.defaults) for r in config.rules)
    assert (a.pending_ns, a.recovery_samples, a.recovery_ns, a.renotify_ns) == (300e9, 3, 3600e9, 0)
    assert (b.pending_ns, b.recovery_samples, b.recovery_ns) == (60e9, 1, 0)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"rules": [{"name": "a", "kind": "compliance_drop"}, {"name": "a", "kind": "exceedance"}]},
            "unique",
        ),
        ({"rules": [{"name": "a", "kind": "telepathy"}]}, "telepathy"),
        ({"rules": [{"name": "a", "kind": "compliance_drop", "windw": "PT1H"}]}, "windw"),
        ({"rules": [{"name": "Bad Name", "kind": "compliance_drop"}]}, "pattern"),
        ({"scheduler": {"timezone": "Mars/Olympus"}}, "unknown time zone"),
        ({"scheduler": {"tick_interval": "PT0.1S"}}, "tick_interval"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_sections_are_refused_with_their_path(section: dict[str, Any], message: str) -> None:
    """Unknown keys, kinds and zones, duplicate names and out-of-range values fail at load."""
    with pytest.raises(ValidationError, match=message):
        AlertsConfig.model_validate(section)


def test_every_setting_is_described() -> None:
    """Every field of the alerts section and of every rule kind has a description (the reference is generated)."""
    models: list[type[BaseModel]] = [AlertsConfig, RuleDefaults, SchedulerConfig, RecoveryConfig]
    models += [type(rule) for rule in DEFAULT_RULES] + [ClassShareConfig]
    missing = [
        f"{m.__name__}.{name}"
        for m in models
        for name, field in m.model_fields.items()
        if not field.description
    ]
    assert missing == []
