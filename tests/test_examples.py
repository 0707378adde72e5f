"""Every `Example:` block of a module docstring validates with its component's model, in context.

A module's docstring is its README (STYLE.md §3), and its `Example:` block (or `Example (what):`),
the indented YAML under that line, is what an operator copies. This test walks every module of
ingest, alerts, config and simulators, reads each block from the source (nothing is imported to
find it) and loads it where it belongs, through the loader that reads that kind of file:

- a block whose top-level keys are sections of ecowatch.yaml (`sinks:`, `mqtt:`, `notify:`, ...)
  is loaded as ecowatch.yaml by `load_settings`, so the rules across sections (unique sink names,
  a dashboard sink that exists) hold for it as for an operator's file; a block of one section's
  field (`rules:`) is first put in its section (`SECTION_OF`);
- any other block has its place in `PLACES`, by module: a section below the top of ecowatch.yaml
  (the gateway's), or a file or body of its own kind (a station registry, a scenario, a silence).

A module whose block does not load is a failing test named after the module; so is a block that
fits no rule above (give it a place in `PLACES`). `${VAR}` references take values from the
environment, as in production; the test sets each one a URL-shaped value of 16+ bytes, which fits
every kind of reference: tokens, keys, secrets, webhook URLs.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from alerts.assessment_method.rules import DEFAULT_RULES_FILE, load_rules
from config.loader import read_yaml
from config.registry import Registry
from config.standards import default_standard, load_standard
from ingest.app.settings import Settings, load_settings
from simulators.scenario import load_scenario
from simulators.simulator import Simulator
from tests.helpers import DEMO_REGISTRY, docstring_examples

ROOT: Final = Path(__file__).resolve().parents[1]
PACKAGES: Final = ("ingest", "alerts", "config", "simulators")
_REFERENCE: Final = re.compile(r"\$\{(\w+)")

Check = Callable[[Path], object]  # loads the file holding a block; raises if it is not valid


@dataclass(frozen=True)
class Example:
    module: str
    what: str | None  # the `(what)` of the header, if any
    text: str  # the block, dedented

    @property
    def id(self) -> str:
        return self.module if self.what is None else f"{self.module} ({self.what})"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _docstrings() -> dict[str, str]:
    """Every module docstring of the packages, by module name, read from the source."""
    docs: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False)
            if doc:
                docs[_module_name(path)] = doc
    return docs


DOCSTRINGS: Final = _docstrings()
EXAMPLES: Final = [
    Example(module, what, text)
    for module, doc in DOCSTRINGS.items()
    for what, text in docstring_examples(doc)
]


# --- where a block goes ---------------------------------------------------------------------------
def _nested(path: Path, *keys: str) -> Path:
    """A copy of the block's file with the block nested under `keys` (its place in ecowatch.yaml)."""
    document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in reversed(keys):
        document = {key: document}
    nested = path.with_name("ecowatch.yaml")
    nested.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return nested


def _in_section(*keys: str) -> Check:
    """The block is a part of ecowatch.yaml below its top, at `keys`."""
    return lambda path: load_settings(_nested(path, *keys))


def _validates_as(model: str) -> Check:
    """The block is the input of one model, `package.module.Name` (named, so that a model that moves
    fails only its own module's case)."""
    module, _, name = model.rpartition(".")
    return lambda path: getattr(importlib.import_module(module), name).model_validate(read_yaml(path))


def _assessment_rules(path: Path) -> object:
    """A rules file that sets some keys: the shipped file's others complete it (as its docstring says)."""
    shipped = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    merged = path.with_name("assessment.yaml")
    merged.write_text(yaml.safe_dump({**shipped, **read_yaml(path)}, allow_unicode=True), encoding="utf-8")
    return load_rules(merged, default_standard())


def _scenario(path: Path) -> object:
    """A scenario, run against the demo stations it names."""
    return Simulator(Registry.load(DEMO_REGISTRY), load_scenario(path))


# A top-level key that is a field of one section of ecowatch.yaml rather than a section: that section.
SECTION_OF: Final[dict[str, str]] = {"rules": "alerts"}

# Blocks that are not ecowatch.yaml from its top, by module: how each one is loaded.
PLACES: Final[dict[str, Check]] = {
    # Sections below the top of ecowatch.yaml, or what a section extends.
    "ingest.mqtt.connection": _in_section("mqtt"),
    "ingest.sources.hj212_gateway.config": _in_section("hj212_gateway"),
    # Options no file holds: the daemon builds them from its sections, or a command line does.
    "ingest.decoders.hj212": _validates_as("ingest.decoders.hj212.HJ212Config"),
    "ingest.mqtt.publisher": _validates_as("ingest.mqtt.publisher.PublisherConfig"),
    "ingest.sources.hj212_gateway.mqtt": _validates_as("ingest.sources.hj212_gateway.GatewayMqttConfig"),
    "simulators.publish": _validates_as("simulators.publish.MqttOptions"),
    # Files and request bodies of their own kind.
    "config.registry": Registry.load,
    "config.standards": load_standard,
    "alerts.assessment_method.rules": _assessment_rules,
    "alerts.silences": _validates_as("alerts.silences.SilenceRequest"),
    "simulators.scenario": _scenario,
}


def check_for(example: Example) -> Check | None:
    """How `example` is loaded: by its module's place, or by its top-level keys; None if unknown."""
    if example.module in PLACES:
        return PLACES[example.module]
    block = yaml.safe_load(example.text)
    if not isinstance(block, dict) or not block:
        return None
    keys = set(block)
    if keys <= set(Settings.model_fields):
        return load_settings
    if len(keys) == 1 and (key := next(iter(keys))) in SECTION_OF:
        return _in_section(SECTION_OF[key])
    return None


# --- the tests ------------------------------------------------------------------------------------
@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No `ECOWATCH_*` override from the developer's shell reaches the loader."""
    for name in [n for n in os.environ if n.startswith("ECOWATCH_")]:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_the_example_loads_where_it_belongs(
    example: Example, tmp_path: Path, environment: pytest.MonkeyPatch
) -> None:
    """The module's Example block, with its ${VAR} references set, loads with its component's model in context."""
    check = check_for(example)
    if check is None:
        pytest.fail(
            f"{example.id}: its Example is not a part of ecowatch.yaml from the top "
            f"(keys of {Settings.__name__}); give it a place in PLACES\n{example.text}",
            pytrace=False,
        )
    for name in _REFERENCE.findall(example.text):
        environment.setenv(name, f"https://hooks.example/{name.lower()}")
    path = tmp_path / "example.yaml"
    path.write_text(example.text, encoding="utf-8")

    try:
        check(path)
    except Exception as exc:  # any failure to load is the finding, reported with its block
        problem = str(exc)
    else:
        return
    pytest.fail(
        f"{example.id}: its Example does not load:\n{problem}\n--- the block:\n{example.text}", pytrace=False
    )


def test_every_example_header_starts_a_block() -> None:
    """A docstring line that starts with `Example` is a block header with an indented block under it."""
    headers = {
        (module, line)
        for module, doc in DOCSTRINGS.items()
        for line in doc.splitlines()
        if line.startswith("Example")
    }
    found = {(e.module, f"Example ({e.what}):" if e.what else "Example:") for e in EXAMPLES}
    assert headers == found


def test_the_walk_finds_the_examples_of_every_kind_of_component() -> None:
    """The sinks', the source's, the validator's, the settings' and the notifiers' examples are among those checked."""
    modules = {e.module for e in EXAMPLES}
    assert {
        "ingest.app.settings",
        "ingest.validate",
        "ingest.deadletter",
        "ingest.sinks.sqlite",
        "ingest.sinks.influxdb",
        "ingest.sinks.influxdb1",
        "alerts.notifiers.webhook",
        "alerts.rules.exceedance",
        "config.registry",
        "simulators.scenario",
    } <= modules
    assert any(m.startswith("ingest.sources.mqtt") for m in modules)


def test_every_place_names_a_module_with_an_example() -> None:
    """PLACES lists only modules that still have an Example block."""
    assert set(PLACES) <= {e.module for e in EXAMPLES}
