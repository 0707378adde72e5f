"""The station registry: the demo file and the checks on every station."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.registry import Registry, WaterClass
from tests.helpers import DEMO_REGISTRY, station


def test_demo_registry_has_thirty_points_on_chongqing_rivers() -> None:
    """The shipped registry loads, is marked illustrative and covers the named rivers."""
    registry = Registry.load(DEMO_REGISTRY)
    assert len(registry) >= 30
    rivers = {s.river for s in registry.values()}
    assert {"长江", "嘉陵江", "乌江", "涪江", "綦江", "阿蓬江", "酉水"} <= rivers
    assert {s.water_body for s in registry.values()} == {"river", "lake", "reservoir"}
    assert "ILLUSTRATIVE, NOT OFFICIAL" in DEMO_REGISTRY.read_text(encoding="utf-8")
    assert all(s.mn is not None and registry.by_mn(s.mn) is s for s in registry.values())


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"id": "has space"}, "id"),
        ({"target_class": "劣V"}, "target class"),
        ({"lat": 91}, "lat"),
        ({"warning_level": 10, "guaranteed_level": 5}, "guaranteed_level"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_stations_are_refused_naming_the_field(overrides: dict[str, object], fragment: str) -> None:
    """Each check names what is wrong."""
    with pytest.raises(ValidationError, match=fragment):
        station(**overrides)


def test_duplicate_ids_and_mns_are_refused(tmp_path: Path) -> None:
    """Two stations cannot share an id or an MN."""
    with pytest.raises(ValueError, match="duplicate station id"):
        Registry([station("a"), station("a")])
    with pytest.raises(ValueError, match="duplicate MN"):
        Registry([station("a", mn="1"), station("b", mn="1")])


def test_class_rank_orders_worse_classes_higher() -> None:
    """劣V ranks below V, which ranks below I."""
    assert WaterClass.I.rank < WaterClass.V.rank < WaterClass.WORSE_THAN_V.rank
