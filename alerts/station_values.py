"""What the alert engine keeps of each station's water: the period value so far of each item, its
newest instant, and how long its data have been missing.

The water rules judge compliance the way the 2011 assessment method does, on period values (the
daily value by default, `AlertsConfig.basis`), not on single readings. Waiting for the day to close
would tell operators about a spill a day late, so the engine keeps the *provisional* period value:
the mean of the period's valid results so far, which is what the method will use if nothing else
arrives. Per item and period it keeps a running sum and count, updated in O(1) per reading:

- N results enter the mean; a below-DL result enters it as `dl_factor` (half) times its detection
  limit, the rule of the method (`alerts.assessment_method.daily`).
- T results (over the analyser's range, "at least this much") never enter the mean; the period
  keeps the largest, and the period value is raised to it (it is a lower bound of the real value),
  except for items where higher is cleaner (`not_raised`: DO, transparency), where T says nothing.
- B, D, F, M (and C) results are data problems: they enter nothing, and start (or continue) the
  item's run of missing data, which a valid result ends (`problem_flag`, `problem_since_ns`).

A reading no newer than its item's newest one is not counted: that is what makes replaying the
readings log after a crash harmless (the state is stored in the same transaction as the alerts).
A late reading (out of order) is therefore left out of the provisional value; the daily
assessment, which reads the store, counts it.

Periods are local days or months in the station's zone (the registry's `timezone`, else the
engine's). Each station caches its current period's bounds, so a reading costs one comparison
unless it starts a new period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from ingest.model import DATA_PROBLEM_FLAGS, DataFlag

Basis = Literal["daily", "monthly"]
NS: Final = 1_000_000_000
_NORMAL: Final = DataFlag.NORMAL
_OVER_RANGE: Final = DataFlag.OVER_RANGE


@dataclass(slots=True)
class ItemValues:
    """One item of one station: the current period's running value and the newest instant."""

    newest_ns: int = -(2**63)
    period_start_ns: int = 0
    period_end_ns: int = 0
    total: float = 0.0
    count: int = 0
    dl: float = 0.0
    t_max: float | None = None
    instant: float = 0.0
    instant_ns: int = -(2**63)
    instant_flag: str = "N"
    instant_below_dl: bool = False
    problem_flag: str | None = None
    problem_since_ns: int | None = None
    t_count: int = 0  # T results this period (they count towards a day's results, as in the method)

    @property
    def results(self) -> int:
        """Results counted this period: valid ones and T ones (the method's count for a day's value)."""
        return self.count + self.t_count

    def period_value(self) -> float | None:
        """The provisional period value: the mean, raised to the largest T result; None without one."""
        mean = self.total / self.count if self.count else None
        if self.t_max is not None and (mean is None or self.t_max > mean):
            return self.t_max
        return mean

    def to_json(self) -> list[Any]:
        return [
            self.newest_ns,
            self.period_start_ns,
            self.period_end_ns,
            self.total,
            self.count,
            self.dl,
            self.t_max,
            self.instant,
            self.instant_ns,
            self.instant_flag,
            self.instant_below_dl,
            self.problem_flag,
            self.problem_since_ns,
            self.t_count,
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> ItemValues:
        return cls(*row)


@dataclass(slots=True)
class StationValues:
    """One station's items (see the module docstring); `changed` until the engine stores them."""

    station_id: str
    zone: ZoneInfo
    basis: Basis
    dl_factor: float = 0.5
    # Items where higher is cleaner (DO, transparency): a T result there says nothing bad.
    not_raised: frozenset[str] = frozenset()
    items: dict[str, ItemValues] = field(default_factory=dict)
    newest_ns: int | None = None
    period_start_ns: int = 0
    period_end_ns: int = 0
    changed: bool = False

    def add(self, parameter: str, time_ns: int, value: float, flag: str, below_dl: bool) -> bool:
        """Count one reading; False when it is no newer than its item's newest (duplicate or late)."""
        item = self.items.get(parameter)
        if item is None:
            item = self.items[parameter] = ItemValues()
        elif time_ns <= item.newest_ns:
            return False
        item.newest_ns = time_ns
        if not item.period_start_ns <= time_ns < item.period_end_ns:
            self._start_period(item, time_ns)
        if flag == _NORMAL:
            if below_dl:
                item.total += value * self.dl_factor
                item.dl = max(item.dl, value)
            else:
                item.total += value
            item.count += 1
            item.problem_flag = item.problem_since_ns = None
        elif flag == _OVER_RANGE:
            if parameter not in self.not_raised:
                item.t_count += 1
                if item.t_max is None or value > item.t_max:
                    item.t_max = value
            item.problem_flag = item.problem_since_ns = None
        elif flag in DATA_PROBLEM_FLAGS:
            if item.problem_since_ns is None:
                item.problem_since_ns = time_ns
            item.problem_flag = flag
        item.instant, item.instant_ns, item.instant_flag, item.instant_below_dl = (
            value,
            time_ns,
            flag,
            below_dl,
        )
        if self.newest_ns is None or time_ns > self.newest_ns:
            self.newest_ns = time_ns
        self.changed = True
        return True

    def _start_period(self, item: ItemValues, time_ns: int) -> None:
        """Move an item to the period of `time_ns`, its running value empty."""
        if not self.period_start_ns <= time_ns < self.period_end_ns:
            self.period_start_ns, self.period_end_ns = period_bounds(time_ns, self.zone, self.basis)
        item.period_start_ns, item.period_end_ns = self.period_start_ns, self.period_end_ns
        item.total, item.count, item.dl, item.t_max, item.t_count = 0.0, 0, 0.0, None, 0

    def current(self, at_ns: int) -> dict[str, ItemValues]:
        """The items whose period contains `at_ns`: those with a provisional value now."""
        return {
            code: item
            for code, item in self.items.items()
            if item.period_start_ns <= at_ns < item.period_end_ns
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "newest_ns": self.newest_ns,
            "items": {code: item.to_json() for code, item in self.items.items()},
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.newest_ns = data.get("newest_ns")
        self.items = {code: ItemValues.from_json(row) for code, row in data.get("items", {}).items()}


def period_bounds(time_ns: int, zone: ZoneInfo, basis: Basis) -> tuple[int, int]:
    """The local day (or month) containing `time_ns`, as [start, end) in UTC ns."""
    local = datetime.fromtimestamp(time_ns // NS, tz=UTC).astimezone(zone)
    day = local.date()
    if basis == "monthly":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    else:
        first, following = day, day + timedelta(days=1)
    return _midnight_ns(first, zone), _midnight_ns(following, zone)


def _midnight_ns(day: Any, zone: ZoneInfo) -> int:
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return int(start.timestamp()) * NS
