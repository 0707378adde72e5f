"""The assessment in the daemon: compliance rates now, the daily assessment, and period reports.

`rates` sums classified points up per group (district, basin or river): how many meet their
target class, how many are class I–III (优良), how many worse than class V (劣V). The operator API
shows them live (`GET /api/v1/compliance`).

The daily assessment (`DailyAssessment.run`, the scheduler's `daily_assessment` job at
`daily_assessment_at`, and once at start) judges each local day that closed by the 2011 method
(`alerts.assessment_method`): daily values from valid data (flags, below-detection and over-range
rules, results per day), each section's class with its required items (a section without one is
not assessable), main pollutants against class III, the regions' shares and grades. For each due
day not yet assessed (`catch_up_days` back at most) it stores, in one transaction of the alert
database: the day's summary (`assessments`, served by `GET /api/v1/compliance?day=`, in the shape
it always had: per station class, target, compliant, primary pollutants, daily means, results; per
district and basin the rates), the daily values (`daily_values`, kept `keep_days`) and a history
record. Its results come from the readings store when the daemon gives it one (what `ecowatch
report` reads: flags, below-detection marks and data kinds as stored), else from the alert
engine's own samples (flags only; also the fallback when the store does not answer or has
nothing of the day). A day without any result is left unassessed.

`PeriodAssessments.report` answers `GET /api/v1/assessment?period=&region=`: the report of a day,
month, quarter, year or the year to date, as `ecowatch report --format json` prints it, made from
the stored daily values and, for the days not stored that have closed, from the readings store
(`assessment_method.stored`). Answers are cached until a day is stored or `CACHE_SECONDS` pass.
"""

from __future__ import annotations

import threading
import time as monotonic_time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

import structlog

from alerts.assessment_method.daily import DailyValues, daily_values
from alerts.assessment_method.period import Period, parse_period
from alerts.assessment_method.region import region_figures
from alerts.assessment_method.report import (
    Report,
    Scope,
    build_report,
    report_json,
    report_windows,
    station_zones,
)
from alerts.assessment_method.rules import AssessmentRules, default_rules
from alerts.assessment_method.source import ResultRow, ResultsRequest, ResultsSource, SourceError
from alerts.assessment_method.stored import complete, day_rows, from_rows
from alerts.classify import Classification
from alerts.config import SchedulerConfig
from alerts.rules.base import GroupBy, station_labels
from alerts.rules.class_share import GOOD_CLASSES
from alerts.store import AlertStore, read_daily_values
from alerts.windows import Sample
from config.registry import Station, WaterClass
from config.standards import Standard
from config.times import to_ns

log = structlog.get_logger(__name__)

GROUPINGS: Final[tuple[GroupBy, ...]] = ("district", "basin")
# A period answer is recomputed after this long even when no day was stored (late data).
CACHE_SECONDS: Final = 600.0
# Period answers kept (period, region and today make the key).
CACHE_SIZE: Final = 16


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
            _rate_row(
                group_by,
                value,
                stations=len(results),
                assessed=len(classed),
                meeting=meeting,
                good=good,
                bad=bad,
            )
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
    rules: AssessmentRules | None = None,
) -> dict[str, Any]:
    """The day's summary (see `summarise_day`) from the alert engine's samples."""
    rules = rules or default_rules()
    zones = station_zones(list(stations.values()), rules)
    daily = daily_values(_sample_rows(samples), zones, standard, rules, [(day, day + timedelta(days=1))])
    return summarise_day(daily, stations, day, standard, rules)


def summarise_day(
    daily: DailyValues, stations: Mapping[str, Station], day: date, standard: Standard, rules: AssessmentRules
) -> dict[str, Any]:
    """The stored summary of a day: per station and per district and basin, as the method judges it."""
    report = day_report(daily, stations, day, standard, rules)
    ordinal = day.toordinal()
    of_day: dict[str, dict[str, tuple[float | None, int]]] = {}  # station -> item -> (mean, results)
    for (station_id, code), days in daily.days.items():
        value = days.get(ordinal)
        if value is not None:
            of_day.setdefault(station_id, {})[code] = (value[0], value[3])
    per_station: dict[str, Any] = {}
    for section in report.sections:
        s = section.current
        sid = s.station.id
        items = of_day.get(sid, {})
        means = {code: round(mean, 6) for code, (mean, _) in items.items() if mean is not None}
        counted = sum(n for _, n in items.values())
        per_station[sid] = {
            "class": None if s.water_class is None else s.water_class.value,
            "target": s.station.target_class.value,
            "compliant": s.meets_target,
            "assessable": s.assessable,
            "missing": list(s.missing),
            "grade": s.grade,
            "primary_pollutants": [p.code for p in s.primary_pollutants],
            "worse_than_target": [p.code for p in s.worse_than_target],
            "means": dict(sorted(means.items())),
            "samples": counted,
        }
    rates_out: dict[str, list[dict[str, Any]]] = {}
    for by in GROUPINGS:
        rows = []
        for name, region in report.regions[by].items():
            fig = region.current
            row = _rate_row(
                by,
                name,
                stations=fig.sections,
                assessed=fig.assessed,
                meeting=fig.meeting_target,
                good=fig.class_i_iii,
                bad=fig.worse_than_v,
            )
            rows.append({**row, "grade": fig.grade})
        rates_out[by] = rows
    overall = region_figures([s.current for s in report.sections], standard, rules)
    return {
        "day": day.isoformat(),
        "standard": standard.name,
        "method": rules.method,
        "stations": per_station,
        "rates": rates_out,
        "overall": {"sections": overall.sections, "assessed": overall.assessed, "grade": overall.grade},
        "left_out": {
            "unknown_station": daily.unknown_station,
            "excluded_flag": daily.excluded_flag,
            "short_days": daily.short_days,
        },
    }


def day_report(
    daily: DailyValues, stations: Mapping[str, Station], day: date, standard: Standard, rules: AssessmentRules
) -> Report:
    period = Period("day", day, day + timedelta(days=1))
    return build_report(daily, list(stations.values()), period, standard, rules)


class Engine(Protocol):
    """What the daily assessment needs of the alert engine (`alerts.engine.AlertEngine`)."""

    @property
    def lock(self) -> AbstractContextManager[Any]: ...

    @property
    def store(self) -> AlertStore: ...

    @property
    def standard(self) -> Standard: ...

    def transaction(self) -> AbstractContextManager[None]: ...


class DailyAssessment:
    """The scheduler's daily job (module docstring)."""

    def __init__(
        self,
        engine: Engine,
        stations: Mapping[str, Station],
        scheduler: SchedulerConfig,
        rules: AssessmentRules,
        *,
        source: ResultsSource | None = None,
        keep_days: int = 800,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._stations = stations
        self._scheduler = scheduler
        self.rules = rules
        self._source = source
        self._keep_days = keep_days
        self._on_stored = on_stored or (lambda: None)
        self._zones = station_zones(list(stations.values()), rules)
        self._last_failure: str | None = None

    def due_days(self, now: datetime) -> list[date]:
        """Days to assess at `now`: day D is due once D + 1 at `daily_assessment_at` has passed."""
        settings = self._scheduler
        local = now.astimezone(ZoneInfo(settings.timezone))
        newest = local.date() - timedelta(days=1 if local.time() >= settings.daily_assessment_at else 2)
        with self._engine.lock:
            assessed = self._engine.store.assessed_days()
        candidates = [newest - timedelta(days=back) for back in range(settings.catch_up_days, -1, -1)]
        return [day for day in candidates if day.isoformat() not in assessed]

    def run(self, now: datetime) -> list[str]:
        """Assess each due day not yet assessed, oldest first; the days stored (ISO)."""
        engine = self._engine
        standard = engine.standard
        now_ns = to_ns(now)
        done: list[str] = []
        for day in self.due_days(now):
            window = [(day, day + timedelta(days=1))]
            daily = daily_values(self._results(day), self._zones, standard, self.rules, window)
            if not _read_anything(daily):
                continue
            summary = summarise_day(daily, self._stations, day, standard, self.rules)
            rows = day_rows(daily).get(day, [])
            with engine.transaction():
                engine.store.save_assessment(day.isoformat(), now_ns, summary)
                engine.store.save_daily_values(day.isoformat(), rows)
                engine.store.add_note(
                    f"assessment:{day.isoformat()}",
                    "daily_assessment",
                    day_bounds(day, ZoneInfo(self._scheduler.timezone))[1],
                    now_ns,
                    {"rates": summary["rates"], "overall": summary["overall"]},
                )
            done.append(day.isoformat())
        if done:
            keep_from = date.fromisoformat(done[-1]) - timedelta(days=self._keep_days)
            with engine.transaction():
                pruned = engine.store.prune_daily_values(keep_from.isoformat())
            log.info("daily_assessment_done", days=done, pruned_rows=pruned)
            self._on_stored()
        return done

    def _results(self, day: date) -> Iterator[ResultRow] | list[ResultRow]:
        window = ((day, day + timedelta(days=1)),)
        if self._source is not None:
            request = ResultsRequest(window, self._zones, tuple(self.rules.decimals), progress=False)
            try:
                rows = list(self._source.results(request))
            except SourceError as exc:
                # Once per distinct failure, not once per due day: a fresh install's store does not
                # exist until its first batch, and a catch-up walks up to a month of days.
                level = log.debug if str(exc) == self._last_failure else log.warning
                self._last_failure = str(exc)
                level("daily_assessment_store_failed", day=day.isoformat(), error=str(exc))
            else:
                if rows:
                    return rows
        chunks = ResultsRequest(window, self._zones, ()).chunks()
        start, end = chunks[0].start_ns, chunks[-1].end_ns
        with self._engine.lock:
            samples = list(self._engine.store.samples_between(start, end))
        return list(_sample_rows(samples))


@dataclass(frozen=True, slots=True)
class PeriodAnswer:
    """A period's report and how its days were found (`Completion.to_json`)."""

    report: Report
    sources: dict[str, object]

    def to_json(self) -> dict[str, Any]:
        """The report as `ecowatch report --format json` prints it, with `sources`."""
        return {**report_json(self.report), "sources": self.sources}


class PeriodAssessments:
    """`GET /api/v1/assessment`: period reports from stored daily values and the store (module doc)."""

    def __init__(
        self,
        db_path: Path,
        stations: Mapping[str, Station],
        standard: Standard,
        rules: AssessmentRules,
        *,
        source: ResultsSource | None = None,
    ) -> None:
        self._db_path = db_path
        self._stations = list(stations.values())
        self._standard = standard
        self.rules = rules
        self._source = source
        self._zones = station_zones(self._stations, rules)
        self._lock = threading.Lock()  # one computation at a time: each may read a month of a store
        self._cache: dict[tuple[str, str | None, date], tuple[float, int, PeriodAnswer]] = {}
        self._version = 0

    def stored(self) -> None:
        """A day was stored: cached answers are stale."""
        self._version += 1

    def today(self, now: datetime) -> date:
        """The local date (rules' default zone) whose days have not closed yet."""
        return now.astimezone(ZoneInfo(self.rules.default_timezone)).date()

    def parse(self, period: str, region: str | None, now: datetime) -> tuple[Period, Scope | None]:
        """The period and scope of a request; PeriodError / ScopeError / LookupError for bad ones."""
        parsed = parse_period(period, self.today(now))
        scope = None if region is None else Scope.parse(region)
        if scope is not None and not any(scope.matches(s) for s in self._stations):
            raise LookupError(f"no station in {scope.kind} {scope.name!r}")
        return parsed, scope

    def report(self, period: Period, scope: Scope | None, now: datetime) -> PeriodAnswer:
        """The report of `period` within `scope`, and how its days were found."""
        today = self.today(now)
        key = (period.label, None if scope is None else f"{scope.kind}:{scope.name}", today)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[1] == self._version and monotonic_time.monotonic() < cached[0]:
                return cached[2]
            version = self._version
            body = self._compute(period, scope, today)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (monotonic_time.monotonic() + CACHE_SECONDS, version, body)
            return body

    def _compute(self, period: Period, scope: Scope | None, today: date) -> PeriodAnswer:
        windows = report_windows(period)
        first, end = min(w[0] for w in windows), max(w[1] for w in windows)
        rows = read_daily_values(self._db_path, first.isoformat(), end.isoformat())
        daily, present = from_rows(rows)
        inside = {d for d in present if any(a <= d < b for a, b in windows)}
        fill = complete(
            daily,
            inside,
            windows,
            today=today,
            source=self._source,
            zones=self._zones,
            standard=self._standard,
            rules=self.rules,
        )
        report = build_report(daily, self._stations, period, self._standard, self.rules, scope=scope)
        return PeriodAnswer(report, fill.to_json())


def _sample_rows(samples: Iterable[tuple[str, str, Sample]]) -> Iterator[ResultRow]:
    """The engine's samples as result tuples (it keeps no below-detection mark)."""
    for station_id, parameter, sample in samples:
        yield (station_id, sample.time_ns, parameter, sample.value, sample.flag.value, False)


def _read_anything(daily: DailyValues) -> bool:
    counts = daily.unknown_station + daily.unknown_item + daily.excluded_flag + daily.short_days
    return bool(daily.days) or counts > 0


def _rate_row(
    group_by: str, name: str, *, stations: int, assessed: int, meeting: int, good: int, bad: int
) -> dict[str, Any]:
    return {
        group_by: name,
        "stations": stations,
        "assessed": assessed,
        "meeting_target": meeting,
        "class_i_iii": good,
        "worse_than_v": bad,
        "share_meeting_target": _share(meeting, assessed),
        "share_class_i_iii": _share(good, assessed),
        "share_worse_than_v": _share(bad, assessed),
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None
