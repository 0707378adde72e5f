"""Benchmark of the period assessment: a monthly report of the national network's size.

3 641 sections (the national network), 4-hourly results of the 9 basic items of an automatic
station (temp, pH, DO, conductivity, turbidity, CODMn, NH3-N, TP, TN) for 30 days: 6 × 30 × 9 ×
3 641 ≈ 5.9 M results, generated in memory as the tuples a store reader yields. Times, per stage:
generation alone (the reader's share, subtracted), daily values, period statistics and section
and regional results of the month, the previous month and last year's month (the whole report),
and the JSON document. Times are CPU seconds of this process (`time.process_time`), so other
work on a shared machine does not count; the wall clock is printed at the end.

    .venv/bin/python bench/assessment.py [--sections 3641] [--days 30]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.assessment_method.daily import daily_values
from alerts.assessment_method.period import parse_period
from alerts.assessment_method.report import build_report, report_json, report_windows, station_zones
from alerts.assessment_method.rules import default_rules
from config.registry import Station, WaterClass
from config.standards import default_standard
from config.times import to_ns

ITEMS = {  # code -> typical value; each result varies around it
    "temp": 18.0, "ph": 7.6, "do": 7.2, "cond": 350.0, "turb": 20.0,
    "codmn": 3.1, "nh3n": 0.35, "tp": 0.12, "tn": 1.6,
}  # fmt: skip
DISTRICTS = [f"区县{i:02d}" for i in range(40)]
BASINS = ["长江", "黄河", "珠江", "松花江", "淮河", "海河", "辽河"]


def stations(count: int) -> list[Station]:
    """`count` synthetic sections over 40 districts, 7 basins and 300 rivers; one in ten a lake."""
    targets = [WaterClass.II, WaterClass.III, WaterClass.III, WaterClass.IV]
    return [
        Station(
            id=f"s{i:05d}",
            name=f"断面{i}",
            river=f"河流{i % 300}",
            basin=BASINS[i % len(BASINS)],
            district=DISTRICTS[i % len(DISTRICTS)],
            water_body="lake" if i % 10 == 0 else "river",
            target_class=targets[i % len(targets)],
            lat=30.0,
            lon=106.0,
        )
        for i in range(count)
    ]


Row = tuple[str, int, str, float, str, bool]


def results(ids: list[str], start: datetime, days: int, seed: int = 1) -> Iterator[Row]:
    """4-hourly results of every item at every section, in time order (as a store returns them)."""
    rng = random.Random(seed)
    # A pool of values per item: realistic spread, and generation stays cheap next to the assessment.
    pools = {code: [round(mid * rng.uniform(0.6, 1.4), 3) for _ in range(997)] for code, mid in ITEMS.items()}
    step = to_ns(start + timedelta(hours=4)) - to_ns(start)
    first = to_ns(start)
    k = 0
    for slot in range(days * 6):
        t = first + slot * step
        for sid in ids:
            for code, pool in pools.items():
                k += 1
                yield (sid, t, code, pool[k % 997], "N", False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=3641)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    standard, rules = default_standard(), default_rules()
    registry = stations(args.sections)
    ids = [s.id for s in registry]
    period = parse_period("2026-11")
    start = datetime(2026, 10, 31, 16, tzinfo=UTC)  # 2026-11-01 00:00 in Asia/Shanghai
    count = args.sections * args.days * 6 * len(ITEMS)
    print(f"{args.sections} sections, {args.days} days of 4-hourly results of {len(ITEMS)} items: {count:,}")

    wall = time.perf_counter()
    gc.collect()
    began = time.process_time()
    for _ in results(ids, start, args.days):
        pass
    generation = time.process_time() - began
    print(f"generating the results alone:     {generation:6.2f} s")

    gc.collect()
    gc.freeze()  # the registry and rules are long-lived: keep the collector off them
    began = time.process_time()
    daily = daily_values(results(ids, start, args.days), station_zones(registry, rules), standard, rules,
                         report_windows(period))  # fmt: skip
    reading = time.process_time() - began
    began = time.process_time()
    report = build_report(daily, registry, period, standard, rules)
    assessing = time.process_time() - began
    began = time.process_time()
    document = report_json(report)
    rendering = time.process_time() - began
    core = reading - generation + assessing
    print(f"daily values (incl. generation):  {reading:6.2f} s  ({len(daily.days):,} series)")
    print(f"report (3 periods, regions):      {assessing:6.2f} s  ({len(document['sections']):,} sections)")
    print(f"JSON document:                    {rendering:6.2f} s")
    print(f"assessment core, generation out:  {core:6.2f} s  ({count / core / 1e6:.2f} M results/s)")
    print(f"wall clock, all of the above:     {time.perf_counter() - wall:6.2f} s")
    print(f"overall {document['overall']['share_i_iii']} I-III, grade {document['overall']['grade']}; "
          f"first day {date.fromordinal(min(next(iter(daily.days.values())))).isoformat()}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
