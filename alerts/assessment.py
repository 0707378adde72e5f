"""Compliance rates of regions, and the daily assessment of every monitoring point.

`rates` sums classified points up per group (district, basin or river): how many meet their
target class, how many are class I–III (优良), how many worse than class V (劣V). The operator
API shows them live; the daily assessment stores them per day.

The daily assessment classifies each water-quality station by the means of the previous local
day's normal-flag samples (the 2011 method assesses daily and monthly means, not instants) and
stores the classes and the regional rates under the day (`assessments` table), with a record in
the history. Pure: the engine passes the samples and the day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Final

from alerts.classify import Classification, classify
from alerts.rules.base import GroupBy, station_labels
from alerts.rules.class_share import GOOD_CLASSES
from alerts.windows import Sample
from config.registry import Station, WaterClass
from config.standards import Standard
from config.times import to_ns

GROUPINGS: Final[tuple[GroupBy, ...]] = ("district", "basin")


def rates(points: Sequence[tuple[Station, Classification | None]], group_by: GroupBy) -> list[dict[str, Any]]:
    """Per group: counts and shares of points meeting target, of class I–III and worse than V."""
    groups: dict[str, list[Classification | None]] = {}
    for station, result in points:
        groups.setdefault(station_labels(station)[group_by], []).append(result)
    out = []
    for value, results in sorted(groups.items()):
        classed = [r for r in results if r is not None and r.water_class is not None]
        meeting = sum(1 for r in classed if r.compliant)
        good = sum(1 for r in classed if r.water_class in GOOD_CLASSES)
        bad = sum(1 for r in classed if r.water_class is WaterClass.WORSE_THAN_V)
        out.append(
            {
                group_by: value,
                "stations": len(results),
                "assessed": len(classed),
                "meeting_target": meeting,
                "class_i_iii": good,
                "worse_than_v": bad,
                "share_meeting_target": _share(meeting, len(classed)),
                "share_class_i_iii": _share(good, len(classed)),
                "share_worse_than_v": _share(bad, len(classed)),
            }
        )
    return out


def day_bounds(day: date, zone: tzinfo) -> tuple[int, int]:
    """[start, end) of a local day, in ns."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    return to_ns(start), to_ns(datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone))


def assess_day(
    standard: Standard,
    stations: Mapping[str, Station],
    samples: Iterable[tuple[str, str, Sample]],
    day: date,
) -> dict[str, Any]:
    """The day's class of every water-quality station (daily means) and the regional rates."""
    sums: dict[str, dict[str, list[float]]] = {}
    for station_id, parameter, sample in samples:
        if sample.normal and parameter in standard.items:
            sums.setdefault(station_id, {}).setdefault(parameter, []).append(sample.value)
    points: list[tuple[Station, Classification | None]] = []
    per_station: dict[str, Any] = {}
    for station in stations.values():
        if "water" not in station.kinds:
            continue
        means = {code: sum(v) / len(v) for code, v in sums.get(station.id, {}).items()}
        result = classify(standard, means, station.water_body, station.target_class) if means else None
        if result is not None and result.water_class is None:
            result = None
        points.append((station, result))
        per_station[station.id] = (
            {"class": None, "compliant": None, "samples": 0}
            if result is None
            else {
                "class": result.water_class.value if result.water_class else None,
                "target": station.target_class.value,
                "compliant": result.compliant,
                "primary_pollutants": list(result.primary_pollutants),
                "means": {code: round(v, 6) for code, v in means.items()},
                "samples": sum(len(v) for v in sums.get(station.id, {}).values()),
            }
        )
    return {
        "day": day.isoformat(),
        "standard": standard.name,
        "stations": per_station,
        "rates": {group_by: rates(points, group_by) for group_by in GROUPINGS},
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None
