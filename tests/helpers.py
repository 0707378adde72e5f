"""Shared by the tests: station and registry builders, the one wait helper, docstring `Example:` blocks."""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

import pytest

from config.registry import Registry, Station, WaterClass

DEMO_REGISTRY = Path(__file__).resolve().parent.parent / "config" / "stations" / "chongqing-demo.yaml"
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000

_T = TypeVar("_T")
# `Example:` or `Example (POST /api/v1/silences):`, then the indented lines (blank ones too) under it.
_EXAMPLE: Final = re.compile(
    r"^Example(?: \((?P<what>[^)\n]+)\))?:\n(?P<body>(?:(?: {4}.*)?\n|(?: {4}.*)$)+)", re.M
)


def station(station_id: str = "st-1", **overrides: object) -> Station:
    fields: dict[str, object] = {
        "id": station_id,
        "name": f"Station {station_id}",
        "river": "Jialing, upper",
        "basin": "Yangtze",
        "district": "Yuzhong",
        "water_body": "river",
        "target_class": WaterClass.III,
        "lat": 29.5,
        "lon": 106.5,
    }
    fields.update(overrides)
    return Station.model_validate(fields)


def registry(*stations: Station) -> Registry:
    return Registry(list(stations) or [station()])


def wait_for(
    condition: Callable[[], _T | None],
    what: str,
    timeout: float = 20.0,
    *,
    detail: Callable[[], object] | None = None,
    interval: float = 0.05,
) -> _T:
    """Poll `condition` every `interval` seconds until it returns a true value, and return that value.

    After `timeout` seconds the test fails naming `what`, and `detail()` (the last state seen, a
    log's end) when given. An exception `condition` raises ends the wait at once: a condition
    raises to say that the awaited thing can no longer happen (the process died).
    """
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}{extra}")
        time.sleep(interval)
    return value


def docstring_examples(doc: str) -> list[tuple[str | None, str]]:
    """The `Example:` blocks of a docstring (STYLE.md §3): (the header's `(what)` or None, the dedented block)."""
    return [
        (match["what"], textwrap.dedent(match["body"]).strip("\n") + "\n") for match in _EXAMPLE.finditer(doc)
    ]
