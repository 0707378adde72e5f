"""Fixtures of the simulator tests: the demo registry and its stations."""

from __future__ import annotations

import pytest

from config.registry import Registry, Station
from tests.helpers import DEMO_REGISTRY


@pytest.fixture(scope="session")
def demo_registry() -> Registry:
    return Registry.load(DEMO_REGISTRY)


@pytest.fixture(scope="session")
def demo_stations(demo_registry: Registry) -> list[Station]:
    return list(demo_registry.values())
