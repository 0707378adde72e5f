"""`ecowatch report`: a period's assessment of sections and regions, as JSON, CSV, XLSX or HTML.

    ecowatch report --period 2026-11 --readings results.csv --registry stations.yaml --format html -o nov.html
    ecowatch report --period 2026-Q3 --region district:渝中区 --readings q3.csv --registry stations.yaml
    ecowatch report --period ytd --today 2026-11-15 --readings 2026.csv --registry stations.yaml \\
        --format xlsx -o ytd.xlsx

Offline: the results come from `--readings` (CSV: station_id,time,parameter,value[,flag], see
readings_csv.py) and the stations from `--registry`; reading the daemon's store comes later and
will feed the same iterator of results. Only the days of the period, the previous period and the
same period last year are kept. `ytd` runs to `--today` (default: today's date in the rules'
default zone, read here at the edge; the assessment itself never reads the clock).

Output goes to `--output`, else stdout (XLSX only when stdout is not a terminal). Exit 0 with the
report; 2 with a message on stderr for a bad argument, an unreadable file or CSV row, or a region
that names no station. Results of stations not in the registry, of items the rules do not assess,
or flagged as not valid are counted on stderr and left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import yaml

from alerts.assessment_method.daily import daily_values
from alerts.assessment_method.period import PeriodError, parse_period
from alerts.assessment_method.readings_csv import ReadingsError, read_results
from alerts.assessment_method.region import group_name
from alerts.assessment_method.report import (
    Report,
    Scope,
    ScopeError,
    build_report,
    report_json,
    report_windows,
    station_zones,
)
from alerts.assessment_method.rules import (
    DEFAULT_RULES_FILE,
    AssessmentRules,
    RulesError,
    default_rules,
    load_rules,
)
from config.registry import Registry
from config.standards import Standard, StandardError, default_standard, load_standard

USAGE_ERROR: Final = 2
FORMATS: Final = ("json", "csv", "xlsx", "html")


class _UsageError(Exception):
    pass


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `report` subcommand; its handler is `run`, also set as the `func` default."""
    parser = subparsers.add_parser(
        "report",
        help="assess sections and regions over a period and print the report",
        description="Assess every section of the registry over a month, quarter, year or the year to date "
        "by the 2011 surface-water assessment method (period values from valid data, GB 3838-2002 "
        "classes, main pollutants, regional shares and grades) and print the report.",
    )
    parser.add_argument("--period", required=True, help="2026-11, 2026-Q3, 2026, ytd or a day, 2026-11-05")
    parser.add_argument("--region", help="only one region: district:NAME, basin:NAME or river:NAME")
    parser.add_argument("--format", choices=FORMATS, default="json", help="output format (default: json)")
    parser.add_argument(
        "--readings",
        type=Path,
        required=True,
        metavar="FILE.csv",
        help="results as CSV: station_id,time,parameter,value[,flag]",
    )
    parser.add_argument("--registry", type=Path, required=True, metavar="FILE.yaml", help="station registry")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)")
    parser.add_argument("--today", type=date.fromisoformat, help="end of ytd, excluded (default: today)")
    parser.add_argument("--rules", type=Path, metavar="FILE", help="assessment rules (default: shipped)")
    parser.add_argument("--standard", type=Path, metavar="FILE", help="standard (default: GB 3838-2002)")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr while reading (default: on a terminal)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build and print the report; 0, or 2 with a message on stderr."""
    try:
        standard, rules = _load(args)
        today = args.today or datetime.now(ZoneInfo(rules.default_timezone)).date()
        period = parse_period(args.period, today)
        scope = None if args.region is None else Scope.parse(args.region)
        registry = _registry(args.registry)
        stations = list(registry.values())
        if scope is not None and not any(scope.matches(s) for s in stations):
            names = sorted({group_name(s, scope.kind) for s in stations})
            raise _UsageError(f"no station in {scope.kind} {scope.name!r}; known: {', '.join(names)}")
        results = read_results(args.readings, progress=args.progress)
        daily = daily_values(results, station_zones(stations, rules), standard, rules, report_windows(period))
        report = build_report(daily, stations, period, standard, rules, scope=scope)
    except (_UsageError, PeriodError, ScopeError, ReadingsError, RulesError, StandardError) as exc:
        print(f"ecowatch report: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    left_out = {
        "of stations not in the registry": daily.unknown_station,
        "of items not assessed": daily.unknown_item,
        "flagged as not valid (F, M, S, D, C, B; T where higher is cleaner)": daily.excluded_flag,
    }
    for what, count in left_out.items():
        if count:
            print(f"ecowatch report: {count} results {what} left out", file=sys.stderr)
    return _write(report, args.format, args.output)


def render(report: Report, fmt: str) -> bytes:
    """The report in `fmt` as bytes (UTF-8 for the text formats)."""
    if fmt == "json":
        return (json.dumps(report_json(report), ensure_ascii=False, indent=2) + "\n").encode()
    if fmt == "csv":
        from alerts.assessment_method.render_csv import render_csv

        return render_csv(report).encode()
    if fmt == "html":
        from alerts.assessment_method.render_html import render_html

        return render_html(report).encode()
    from alerts.assessment_method.render_xlsx import render_xlsx

    return render_xlsx(report)


def _write(report: Report, fmt: str, output: Path | None) -> int:
    if output is None and fmt == "xlsx" and sys.stdout.isatty():
        print("ecowatch report: error: XLSX is binary: give --output FILE", file=sys.stderr)
        return USAGE_ERROR
    data = render(report, fmt)
    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    try:
        output.write_bytes(data)
    except OSError as exc:
        print(f"ecowatch report: error: cannot write {output}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def _load(args: argparse.Namespace) -> tuple[Standard, AssessmentRules]:
    try:
        standard = default_standard() if args.standard is None else load_standard(args.standard)
    except OSError as exc:
        raise _UsageError(f"cannot load standard {args.standard}: {exc}") from exc
    if args.rules is None and args.standard is None:
        return standard, default_rules()
    return standard, load_rules(args.rules or DEFAULT_RULES_FILE, standard)


def _registry(path: Path) -> Registry:
    try:
        return Registry.load(path)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # pydantic's ValidationError is a ValueError
        raise _UsageError(f"cannot load registry {path}: {exc}") from exc
