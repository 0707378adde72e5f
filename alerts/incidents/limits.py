"""Which readings the tracker is fed, and with which limit: GB 3838 upper limits of the target class.

An incident follows an item with an upper limit (`max` in the standard: NH3-N, COD, CODMn, TP...)
that the standard assesses on the station's water body (TN of lakes and reservoirs, assessed
separately there, included), against the limit of the station's target class, as the exceedance
rule does (alerts/rules/exceedance.py). A normal (N) reading counts either way; one flagged T
(above the analyser's range, "at least this") counts only above the limit: under it, the real
value may be higher, so it is not clean. Other flags do not count.
"""

from __future__ import annotations

from typing import Final

from config.registry import Station
from config.standards import Assessment, Standard

# HJ 212 flags that are readings of the water: N normal, T over range (a lower bound).
COUNTED_FLAGS: Final = frozenset({"N", "T"})


def upper_limit(standard: Standard, station: Station, code: str) -> float | None:
    """The station's target-class upper limit of `code`, None if the item is not followed."""
    item = standard.items.get(code)
    if (
        item is None
        or item.kind != "max"
        or item.assessment_for(station.water_body) is Assessment.NOT_ASSESSED
    ):
        return None
    limits = item.limits_for(station.water_body)
    if limits is None:
        return None
    return limits[standard.classes.index(station.target_class)]


def counts(flag: str, value: float, limit: float) -> bool:
    """Whether a reading with this flag is fed to the tracker."""
    return flag == "N" or (flag == "T" and value > limit)
