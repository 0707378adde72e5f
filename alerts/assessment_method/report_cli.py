"""`ecowatch report`: a period's assessment of sections and regions, as JSON, CSV, XLSX or HTML.

    ecowatch report --config ecowatch.yaml --period 2026-11 --format html -o nov.html
    ecowatch report --period 2026-11 --readings results.csv --registry stations.yaml --format html -o nov.html
    ecowatch report --period 2026-Q3 --region district:渝中区 --readings q3.csv --registry stations.yaml
    ecowatch report --period ytd --today 2026-11-15 --readings 2026.csv --registry stations.yaml \\
        --format xlsx -o ytd.xlsx

From the configured store by default: the daemon's configuration (`--config`, else
$ECOWATCH_CONFIG, else the built-in defaults) names the registry, the sinks (the report reads the
one `assessment.sink` names, else the first InfluxDB 2, InfluxDB 1.x or SQLite sink) and the
rules; the entry point opens it (`open_store`, from ingest.app) so that this module stays usable
without the daemon. Offline with `--readings` (CSV: station_id,time,parameter,value[,flag], see
readings_csv.py) and `--registry`. Either way the results are streamed into the core, and only
the days of the period, the previous period and the same period last year are read. `ytd` runs
to `--today` (default: today's date in the rules' default zone, read here at the edge; the
assessment itself never reads the clock).

Output goes to `--output`, else stdout (XLSX only when stdout is not a terminal). Exit 0 with the
report; 2 with a message on stderr for a bad argument, an unreadable file or CSV row, a
configuration that cannot be used, or a region that names no station; 1 when the store cannot
answer. Results of stations not in the registry, of items the rules do not assess, or flagged as
not valid are counted on stderr and left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import yaml

from alerts.assessment_method.daily import daily_values
from alerts.assessment_method.period import PeriodError, parse_period
from alerts.assessment_method.readings_csv import ReadingsError
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
from alerts.assessment_method.source import CsvSource, OpenedStore, ResultsRequest, SourceError
from config.registry import Registry
from config.standards import Standard, StandardError, default_standard, load_standard

USAGE_ERROR: Final = 2
STORE_ERROR: Final = 1
FORMATS: Final = ("json", "csv", "xlsx", "html")


# Opens the configured store for `--config` (ingest.app.assessment_source.open_report_store);
# raises StoreConfigError for a configuration that cannot be used.
StoreOpener = Callable[[argparse.Namespace], OpenedStore]


class StoreConfigError(ValueError):
    """The configuration names no usable store, registry or rules file."""


class _UsageError(Exception):
    pass


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Add the `report` subcommand; its handler is `run`, also set as the `func` default.

    `add_config` adds the entry point's `--config` option (reading from the store needs it).
    """
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
        metavar="FILE.csv",
        help="offline: results as CSV (station_id,time,parameter,value[,flag]) instead of the store",
    )
    parser.add_argument(
        "--registry",
        type=Path,
        metavar="FILE.yaml",
        help="station registry (needed with --readings; default: the configuration's)",
    )
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
    if add_config is not None:
        add_config(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, open_store: StoreOpener | None = None) -> int:
    """Build and print the report; 0, 2 with a message on stderr, 1 when the store cannot answer.

    Without `--readings` the results come from `open_store(args)` (the entry point's).
    """
    opened: OpenedStore | None = None
    try:
        opened = _open(args, open_store)
        standard, rules = _load(args, opened.rules)
        today = args.today or datetime.now(ZoneInfo(rules.default_timezone)).date()
        period = parse_period(args.period, today)
        scope = None if args.region is None else Scope.parse(args.region)
        stations = list(opened.registry.values())
        if scope is not None and not any(scope.matches(s) for s in stations):
            names = sorted({group_name(s, scope.kind) for s in stations})
            raise _UsageError(f"no station in {scope.kind} {scope.name!r}; known: {', '.join(names)}")
        windows = report_windows(period)
        zones = station_zones(stations, rules)
        request = ResultsRequest(tuple(windows), zones, tuple(rules.decimals), progress=args.progress)
        daily = daily_values(opened.source.results(request), zones, standard, rules, windows)
        report = build_report(daily, stations, period, standard, rules, scope=scope)
    except (
        _UsageError,
        StoreConfigError,
        PeriodError,
        ScopeError,
        ReadingsError,
        RulesError,
        StandardError,
    ) as exc:
        print(f"ecowatch report: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except SourceError as exc:
        print(f"ecowatch report: error: {exc}", file=sys.stderr)
        return STORE_ERROR
    finally:
        if opened is not None:
            opened.source.close()
    for note in opened.source.notes:
        print(f"ecowatch report: {note}", file=sys.stderr)
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


def _open(args: argparse.Namespace, open_store: StoreOpener | None) -> OpenedStore:
    if args.readings is not None:
        if args.registry is None:
            raise _UsageError("--readings needs --registry FILE.yaml")
        return OpenedStore(_registry(args.registry), CsvSource(args.readings))
    if open_store is None:
        raise _UsageError("give --readings FILE.csv and --registry FILE.yaml (no store to read here)")
    return open_store(args)


def _load(args: argparse.Namespace, configured: Path | None = None) -> tuple[Standard, AssessmentRules]:
    try:
        standard = default_standard() if args.standard is None else load_standard(args.standard)
    except OSError as exc:
        raise _UsageError(f"cannot load standard {args.standard}: {exc}") from exc
    rules_file = args.rules or configured
    if rules_file is None and args.standard is None:
        return standard, default_rules()
    return standard, load_rules(rules_file or DEFAULT_RULES_FILE, standard)


def _registry(path: Path) -> Registry:
    try:
        return Registry.load(path)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # pydantic's ValidationError is a ValueError
        raise _UsageError(f"cannot load registry {path}: {exc}") from exc
