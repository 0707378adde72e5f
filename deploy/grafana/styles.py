"""Colours, units and thresholds of the Grafana dashboard: GB 3838 classes as Grafana sees them.

Class colours follow the 2011 assessment method (环办〔2011〕22号, 地表水环境质量评价办法（试行）):
I-II blue (优), III green (良好), IV yellow (轻度污染), V orange (中度污染), worse than V red
(重度污染); it also makes class III the reference class, whose limits the trend panels draw.
Grafana's thresholds colour a value from a step's value upwards, so a value exactly on a `max`
limit shows the worse class's colour (GB 3838 puts it in the better class); the Flux classification
(deploy/grafana/flux.py) has no such edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from config.registry import WaterClass
from config.standards import Item
from deploy.grafana.flux import CLASSES, class_index

REFERENCE_CLASS: Final = WaterClass.III
CLASS_COLOURS: Final[Mapping[WaterClass, str]] = {
    WaterClass.I: "blue",
    WaterClass.II: "blue",
    WaterClass.III: "green",
    WaterClass.IV: "yellow",
    WaterClass.V: "orange",
    WaterClass.WORSE_THAN_V: "red",
}
NO_DATA_COLOUR: Final = "#808080"
# Grafana's unit ids for the catalogue's units; any other unit is shown as a suffix.
GRAFANA_UNITS: Final[Mapping[str, str]] = {
    "1": "none",
    "°C": "celsius",
    "m": "lengthm",
    "mm": "lengthmm",
    "m/s": "velocityms",
    "m³/s": "flowcms",
}


def grafana_unit(unit: str) -> str:
    return GRAFANA_UNITS.get(unit, f"suffix: {unit}")


def step(colour: str, value: float | None) -> dict[str, Any]:
    return {"color": colour, "value": value}


def class_index_steps() -> list[dict[str, Any]]:
    """Colours of the class index (0 no data, 1 = I ... 6 = worse than V)."""
    return [step(NO_DATA_COLOUR, None)] + [step(CLASS_COLOURS[c], class_index(c)) for c in CLASSES]


def class_index_mappings() -> list[dict[str, Any]]:
    options: dict[str, Any] = {"0": {"text": "no data", "color": NO_DATA_COLOUR, "index": 0}}
    for c in CLASSES:
        options[str(class_index(c))] = {"text": c.value, "color": CLASS_COLOURS[c], "index": class_index(c)}
    return [{"type": "value", "options": options}]


def item_class_steps(item: Item, limits: Sequence[float] | None) -> list[dict[str, Any]]:
    """Thresholds colouring a value of the item by its class (a value on a limit shows the worse)."""
    worse = CLASS_COLOURS[WaterClass.WORSE_THAN_V]
    if item.kind == "range":
        assert item.low is not None
        assert item.high is not None
        return [step(worse, None), step(CLASS_COLOURS[WaterClass.I], item.low), step(worse, item.high)]
    assert limits is not None
    if item.kind == "max":
        return [step(CLASS_COLOURS[CLASSES[0]], None)] + [
            step(CLASS_COLOURS[CLASSES[i + 1]], limit) for i, limit in enumerate(limits)
        ]
    return [step(worse, None)] + [
        step(CLASS_COLOURS[CLASSES[i]], limits[i]) for i in reversed(range(len(limits)))
    ]


def reference_steps(item: Item) -> list[dict[str, Any]]:
    """Thresholds drawing the class III limit (rivers): meeting it one colour, beyond it another."""
    ok, beyond = CLASS_COLOURS[REFERENCE_CLASS], CLASS_COLOURS[WaterClass.IV]
    if item.kind == "range":
        assert item.low is not None
        assert item.high is not None
        return [step(beyond, None), step(ok, item.low), step(beyond, item.high)]
    assert item.limits is not None
    limit = item.limits[REFERENCE_CLASS.rank]
    return (
        [step(ok, None), step(beyond, limit)] if item.kind == "max" else [step(beyond, None), step(ok, limit)]
    )
