"""GB 3838-2002 classification of a monitoring point by the single-factor method.

Pure functions over a `Standard` (config/standards.py) and values: no I/O, no clock. The limits
come from the standard file; this module holds only the method:

- Each item classifies alone. `max`: the best class whose limit the value does not exceed; `min`
  (DO): the best class whose limit the value reaches; a value on a limit meets that class, and
  where classes share a limit (COD 15/15) the best one wins. `range` (pH): inside [6, 9] meets
  every class, so it reports class I; outside meets none. A value that meets no class V limit is
  劣V. `none` (water temperature) is reported without a class. DO's alternative class I criterion
  (saturation >= 90 %) is not applied: readings carry concentration only.
- The point's class is the worst class among its assessed items (环办〔2011〕22号, 地表水环境质量
  评价办法（试行）, single-factor method). Whether an item is assessed, on rivers or on lakes and
  reservoirs, is data: in GB 3838-2002 temperature, TN (rivers) and fecal coliform are reported
  but not assessed; TN of lakes and reservoirs is assessed separately — it is classified into
  `separately_assessed` and never sets `water_class` or `compliant`.
- Exceedance (超标倍数, value / limit - 1) is computed for the `max` items that are assessed or
  assessed separately and exceed the reference class: the target class when one is given, else
  class III, the reference of the 2011 method. The method computes none for pH, DO or temperature.
- Primary pollutants (主要污染指标): when the point's class is worse than the reference class,
  the assessed items whose class equals the point's class, ranked by exceedance, largest first;
  items without one (pH, DO) follow in the standard's order. This is the 2011 method's rule for
  items of the worst class, which also caps the list at three and may fill it from the next-worst
  class; we report every item of the worst class, in the method's order, so a caller that wants
  the method's list takes `primary_pollutants[:3]`. The method's preference for cyanide and heavy
  metals is not applied.
- `classify_readings` uses only readings whose HJ 212 flag counts for compliance (ingest/model.py),
  the latest per parameter, and reports the excluded readings of the standard's items.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from config.registry import WaterClass
from config.standards import Assessment, Standard, WaterBody
from ingest.model import Reading

# 2011 assessment method: primary pollutants are named, and exceedance reckoned, against class III.
DEFAULT_REFERENCE_CLASS: Final = WaterClass.III
# Exceedance multiples in JSON: enough digits for any limit in the table, none of the float noise.
_JSON_DIGITS: Final = 6


@dataclass(frozen=True, slots=True)
class Classification:
    """The class of one point from a set of values, with what decided it.

    `water_class` is None when no assessed item has a value; `values` holds the values of the
    standard's items that were used (temperature included); `parameters` the class of every item
    that classifies, assessed or not; `assessed` the items that set `water_class`; `compliant` is
    None without a target or without a class; `excluded` is filled by `classify_readings` only.
    Dicts and tuples list items in the standard's order.
    """

    standard: str
    water_body: WaterBody
    target: WaterClass | None
    water_class: WaterClass | None
    values: dict[str, float]
    parameters: dict[str, WaterClass]
    assessed: tuple[str, ...]
    separately_assessed: dict[str, WaterClass]
    primary_pollutants: tuple[str, ...]
    compliant: bool | None
    exceedance: dict[str, float]
    excluded: tuple[Reading, ...] = ()

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict; classes as their names ("I".."V", "劣V")."""
        return {
            "standard": self.standard,
            "water_body": self.water_body,
            "target": _name(self.target),
            "class": _name(self.water_class),
            "compliant": self.compliant,
            "primary_pollutants": list(self.primary_pollutants),
            "parameters": {code: c.value for code, c in self.parameters.items()},
            "assessed": list(self.assessed),
            "separately_assessed": {code: c.value for code, c in self.separately_assessed.items()},
            "exceedance": {code: round(m, _JSON_DIGITS) for code, m in self.exceedance.items()},
            "values": dict(self.values),
            "excluded": [
                {"parameter": r.parameter, "value": r.value, "flag": r.flag.value, "time": r.time.isoformat()}
                for r in self.excluded
            ],
        }


def classify_value(standard: Standard, code: str, value: float, water_body: WaterBody) -> WaterClass | None:
    """The class one value meets, or None when the standard does not classify the code."""
    item = standard.items.get(code)
    if item is None or item.kind == "none":
        return None
    if not math.isfinite(value):
        raise ValueError(f"{code}: {value} is not a finite number")
    if item.kind == "range":
        # The loader guarantees both bounds on a range item and limits on max and min items.
        assert item.low is not None
        assert item.high is not None
        return standard.classes[0] if item.low <= value <= item.high else WaterClass.WORSE_THAN_V
    limits = item.limits_for(water_body)
    assert limits is not None
    for water_class, limit in zip(standard.classes, limits, strict=True):
        if (value <= limit) if item.kind == "max" else (value >= limit):
            return water_class
    return WaterClass.WORSE_THAN_V


def classify(
    standard: Standard,
    values: Mapping[str, float],
    water_body: WaterBody,
    target: WaterClass | None = None,
) -> Classification:
    """Classify a point from its values by code; codes the standard does not list are ignored."""
    if target is WaterClass.WORSE_THAN_V:
        raise ValueError("a target class must be one of I..V")
    reference = target if target is not None else DEFAULT_REFERENCE_CLASS
    reference_index = standard.classes.index(reference)
    known: dict[str, float] = {}
    parameters: dict[str, WaterClass] = {}
    assessed: list[str] = []
    separately: dict[str, WaterClass] = {}
    exceedance: dict[str, float] = {}
    for code, item in standard.items.items():  # the standard's order, so results read like its table
        if code not in values:
            continue
        value = known[code] = values[code]
        water_class = classify_value(standard, code, value, water_body)
        if water_class is None:
            continue
        parameters[code] = water_class
        assessment = item.assessment_for(water_body)
        if assessment is Assessment.NOT_ASSESSED:
            continue
        if assessment is Assessment.ASSESSED:
            assessed.append(code)
        else:
            separately[code] = water_class
        limits = item.limits_for(water_body)
        if item.kind == "max" and limits is not None and value > limits[reference_index]:
            exceedance[code] = value / limits[reference_index] - 1

    point_class = max((parameters[code] for code in assessed), key=lambda c: c.rank, default=None)
    primary: tuple[str, ...] = ()
    if point_class is not None and point_class.rank > reference.rank:
        worst = [code for code in assessed if parameters[code] is point_class]
        # sorted() is stable: items without an exceedance keep the standard's order, after the rest.
        primary = tuple(sorted(worst, key=lambda code: -exceedance.get(code, -math.inf)))
    compliant = None if target is None or point_class is None else point_class.rank <= target.rank
    return Classification(
        standard=standard.name,
        water_body=water_body,
        target=target,
        water_class=point_class,
        values=known,
        parameters=parameters,
        assessed=tuple(assessed),
        separately_assessed=separately,
        primary_pollutants=primary,
        compliant=compliant,
        exceedance=exceedance,
    )


def classify_readings(
    standard: Standard,
    readings: Iterable[Reading],
    water_body: WaterBody,
    target: WaterClass | None = None,
) -> Classification:
    """Classify one station from its readings: compliance-flagged only, the latest per parameter.

    `excluded` lists the readings of the standard's items left out for their flag, in input order.
    Readings of more than one station are refused: a point's class never mixes stations.
    """
    latest: dict[str, Reading] = {}
    excluded: list[Reading] = []
    station_id: str | None = None
    for reading in readings:
        if station_id is None:
            station_id = reading.station_id
        elif reading.station_id != station_id:
            raise ValueError(
                f"readings of stations {station_id!r} and {reading.station_id!r} in one classification"
            )
        if not reading.counts_for_compliance:
            if reading.parameter in standard.items:
                excluded.append(reading)
            continue
        kept = latest.get(reading.parameter)
        if kept is None or reading.time_ns >= kept.time_ns:
            latest[reading.parameter] = reading
    values = {code: reading.value for code, reading in latest.items()}
    result = classify(standard, values, water_body, target)
    return dataclasses.replace(result, excluded=tuple(excluded))


def _name(water_class: WaterClass | None) -> str | None:
    return None if water_class is None else water_class.value
