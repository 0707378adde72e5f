"""Results from a CSV file, for offline reports and audits: an iterator of `Result` tuples.

    station_id,time,parameter,value,flag
    cq-cj-cuntan,2026-11-01T00:00:00+08:00,nh3n,0.21,N
    cq-cj-cuntan,2026-11-01T04:00:00+08:00,tp,0.01L,

A header names the columns (any order; `flag` optional, default N, an empty flag is N). `time` is
RFC 3339 with an offset (`Z` or `+08:00`); `value` a number, or a number followed by `L` for a
result below that detection limit. Rows are streamed: the file is never held in memory. A row that
cannot be read stops the reading with `ReadingsError` naming the line. `progress` shows a byte
counter (tqdm) on stderr: None shows it on a terminal only.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final

from tqdm import tqdm

from alerts.assessment_method.daily import Result, parse_value
from config.times import to_ns

REQUIRED_COLUMNS: Final = ("station_id", "time", "parameter", "value")
# HJ 212-2017 data flags (N normal, F stopped, M maintenance, S manual, D fault, C calibration,
# T over range, B communication fault): anything else is a typo worth stopping for.
FLAGS: Final = frozenset("NFMSDCTB")
# Progress is updated every this many lines: tqdm's own cost stays out of the reading.
_PROGRESS_EVERY: Final = 20_000
# Distinct time stamps remembered: a year of 4-hourly results has 2 190; bounded for odd files.
_TIME_CACHE: Final = 100_000


class ReadingsError(ValueError):
    """A CSV file or row that cannot be read; the message names the file and line."""


def read_results(path: Path, *, progress: bool | None = None) -> Iterator[Result]:
    """Stream the results of a CSV file."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ReadingsError(f"{path}: {exc}") from exc
    with (
        handle,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=path.name,
            disable=(not sys.stderr.isatty()) if progress is None else not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        ) as bar,
    ):
        rows = csv.reader(_lines(handle, bar))
        header = next(rows, None)
        if header is None:
            raise ReadingsError(f"{path}: empty file, expected a header {','.join(REQUIRED_COLUMNS)}[,flag]")
        columns = [name.strip() for name in header]
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise ReadingsError(f"{path}: header lacks {', '.join(missing)}")
        station_at, time_at, parameter_at, value_at = (columns.index(n) for n in REQUIRED_COLUMNS)
        flag_at = columns.index("flag") if "flag" in columns else None
        times: dict[str, int] = {}  # rows share their times: parse each once
        try:
            for row in rows:
                if not row:
                    continue
                stamp = row[time_at]
                time_ns = times.get(stamp)
                if time_ns is None:
                    if len(times) >= _TIME_CACHE:
                        times.clear()
                    time_ns = times[stamp] = _time_ns(stamp)
                value, below = parse_value(row[value_at])
                flag = (row[flag_at].strip() or "N") if flag_at is not None and flag_at < len(row) else "N"
                if flag not in FLAGS:
                    raise ValueError(f"unknown flag {flag!r}")
                yield Result(row[station_at].strip(), time_ns, row[parameter_at].strip(), value, flag, below)
        except (ValueError, IndexError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
            raise ReadingsError(f"{path}, line {rows.line_num}: {exc}") from exc


def _lines(handle: BinaryIO, bar: tqdm) -> Iterator[str]:
    pending = 0
    first = True
    for count, line in enumerate(handle, start=1):
        pending += len(line)
        if count % _PROGRESS_EVERY == 0:
            bar.update(pending)
            pending = 0
        text = line.decode("utf-8-sig" if first else "utf-8")
        first = False
        yield text
    bar.update(pending)


def _time_ns(text: str) -> int:
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no offset (RFC 3339 needs Z or ±hh:mm)")
    return to_ns(moment)
