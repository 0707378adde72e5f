"""Small builders shared by the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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
