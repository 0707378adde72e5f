"""Small builders shared by the unit tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.registry import Registry, Station, WaterClass

DEMO_REGISTRY = Path(__file__).resolve().parent.parent / "config" / "stations" / "chongqing-demo.yaml"
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000


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


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
