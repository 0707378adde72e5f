"""Where a report's results come from: the contract a reader fulfils, and how it cuts time.

A `ResultsSource` answers a `ResultsRequest` (the local day ranges a report needs, the stations
with their zones, the items it assesses) with an iterator of result tuples (daily.py's `Result`
fields), streamed: a reader never holds a period in memory. Two kinds exist:

- `CsvSource` (here): a CSV file (readings_csv.py), for audits and tests; it yields every row and
  leaves the filtering to the core (`daily_values` counts what it leaves out).
- the daemon's stores (`ingest.app.assessment_source`): SQLite, InfluxDB 2 (Flux), InfluxDB 1.x
  (InfluxQL) and VictoriaMetrics, each reading the request's time in `request.chunks()`, one bulk
  query (or a few) per chunk, never one per station.

Chunks. The request's day ranges are merged where they touch, and each merged range is cut at the
first day of every month: a chunk is a month of the report (less at the range's ends) as a
half-open UTC interval in ns. The outer bounds cover the local days in every zone of the request
(the earliest local midnight of the first day, the latest of the day after the last); the inner
cuts are a single instant each (local midnight in the first zone), so chunks never overlap and
no result is read twice. Which local day a result belongs to is the core's business, not the
chunk's.

Data kinds. A store may hold more than one kind of value for a station and item (the `data_kind`
tag: real-time results of the analyser, hourly values, manual laboratory results ...). The
method wants the analyser's results where they exist ("automatic data take priority"): a reader
keeps, per station, item and chunk, only the first kind of its list (`DEFAULT_KINDS` unless
configured) that has any result there; values without a `data_kind` are real-time. Aggregates
(minute, daily values) are not in the default list: they would count measurements twice.

`OpenedStore` is what the entry point's opener gives `ecowatch report --config`: the registry,
the reader and the rules file the configuration names.

`SourceError` is what a reader raises when its store cannot answer (down, refused, nonsense): the
report stops with the message; nothing partial is printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Final, Protocol

from alerts.assessment_method.period import next_month
from alerts.assessment_method.readings_csv import read_results
from config.registry import Registry
from config.times import to_ns

ResultRow = tuple[str, int, str, float, str, bool]
# Kinds the readers keep by default, in order of preference (see the module docstring). The
# analyser's own results first (HJ 212 2011 real-time, then the 2061 values a 4-hourly analyser
# reports as "hourly"), manual laboratory results when there is no automatic result at all.
DEFAULT_KINDS: Final = ("realtime", "hourly", "lab")
REALTIME: Final = "realtime"


class SourceError(RuntimeError):
    """The results could not be read; the message says from where and why."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A half-open UTC interval [start_ns, end_ns) of one request, named by its first local day."""

    start_ns: int
    end_ns: int
    first_day: date
    end_day: date

    @property
    def label(self) -> str:
        last = self.end_day - timedelta(days=1)
        if self.first_day.day == 1 and self.end_day == next_month(self.first_day):
            return f"{self.first_day:%Y-%m}"
        return self.first_day.isoformat() if last == self.first_day else f"{self.first_day}/{last}"


@dataclass(frozen=True, slots=True)
class ResultsRequest:
    """What a report reads: local day ranges [start, end), the stations' zones, the items."""

    windows: tuple[tuple[date, date], ...]
    zones: Mapping[str, tzinfo]
    items: tuple[str, ...]
    progress: bool | None = None  # a bar on stderr: None on a terminal only
    station_ids: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "station_ids", tuple(sorted(self.zones)))

    def chunks(self) -> list[Chunk]:
        """The request's time as contiguous, non-overlapping month chunks (module docstring)."""
        zones: list[tzinfo] = list(dict.fromkeys(self.zones.values())) or [UTC]
        out: list[Chunk] = []
        for start, end in merge_windows(self.windows):
            cuts: list[date] = [start]
            cursor = next_month(start)
            while cursor < end:
                cuts.append(cursor)
                cursor = next_month(cursor)
            cuts.append(end)
            bounds = [min(_midnight(start, z) for z in zones)]
            bounds += [_midnight(day, zones[0]) for day in cuts[1:-1]]
            bounds.append(max(_midnight(end, z) for z in zones))
            for i in range(len(cuts) - 1):
                out.append(Chunk(bounds[i], bounds[i + 1], cuts[i], cuts[i + 1]))
        return out

    def days(self) -> int:
        """Local days the request covers (for progress bars)."""
        return sum((b - a).days for a, b in merge_windows(self.windows))


class ResultsSource(Protocol):
    """A reader of results for reports (module docstring)."""

    @property
    def description(self) -> str:
        """What is read, for messages: `readings.csv`, `sqlite var/readings.db`."""
        ...

    @property
    def notes(self) -> Sequence[str]:
        """What the reader could not keep as stored (a store without flags), for the report's stderr."""
        ...

    def results(self, request: ResultsRequest) -> Iterator[ResultRow]:
        """The results of the request's chunks, streamed; raises SourceError."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class CsvSource:
    """Results from a CSV file (readings_csv.py): every row, the core filters."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def description(self) -> str:
        return str(self.path)

    @property
    def notes(self) -> Sequence[str]:
        return ()

    def results(self, request: ResultsRequest) -> Iterator[ResultRow]:
        return read_results(self.path, progress=request.progress)

    def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class OpenedStore:
    """A configured store opened for a report: stations, reader, and the configured rules file."""

    registry: Registry
    source: ResultsSource
    rules: Path | None = None


def merge_windows(windows: Iterable[tuple[date, date]]) -> list[tuple[date, date]]:
    """Day ranges sorted, with those that touch or overlap merged; empty ones dropped."""
    merged: list[tuple[date, date]] = []
    for start, end in sorted(w for w in windows if w[0] < w[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def missing_ranges(window: tuple[date, date], present: Iterable[date]) -> list[tuple[date, date]]:
    """The day ranges of `window` whose days are not in `present`."""
    have = set(present)
    out: list[tuple[date, date]] = []
    day = window[0]
    while day < window[1]:
        if day not in have:
            if out and out[-1][1] == day:
                out[-1] = (out[-1][0], day + timedelta(days=1))
            else:
                out.append((day, day + timedelta(days=1)))
        day += timedelta(days=1)
    return out


def _midnight(day: date, zone: tzinfo) -> int:
    return to_ns(datetime.combine(day, time(0), tzinfo=zone))
