"""`ecowatch incidents`: follow pollution events along the rivers in a CSV of results, offline.

    ecowatch incidents --readings results.csv --registry stations.yaml --format json

The CSV is the one `ecowatch report` reads (station_id,time,parameter,value[,flag];
alerts/assessment_method/readings_csv.py); the registry must have a `network:` section
(config/network.py). Readings are sorted by time and fed to `IncidentTracker` with the GB 3838
limit of each station's target class (`--standard` for another standard file; limits.py says
which readings count). The output lists every incident, open or closed by the end of the file:
the item, the stations in flow order with `first_exceeded_at`, the origin reach (river, upstream
and downstream bounding stations), the forecast (station or intake id, ETA), the timeline.

Exit 0 with the incidents, 2 with a message on stderr for a bad argument, an unreadable file or
CSV row, or a registry without a network.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from alerts.assessment_method.readings_csv import ReadingsError, read_results
from alerts.incidents.config import IncidentConfig
from alerts.incidents.limits import counts, upper_limit
from alerts.incidents.tracker import IncidentTracker
from config.registry import Registry
from config.standards import Standard, StandardError, default_standard, load_standard

USAGE_ERROR: Final = 2
FORMATS: Final = ("json",)


class _UsageError(Exception):
    pass


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `incidents` subcommand; its handler is `run`, also set as the `func` default."""
    parser = subparsers.add_parser(
        "incidents",
        help="follow pollution events along the rivers in a CSV of results",
        description="Feed a CSV of results (as for `ecowatch report`) through the incident tracker and "
        "print every incident: stations in flow order, origin reach, downstream arrival forecast.",
    )
    _arguments(parser)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--readings",
        type=Path,
        required=True,
        metavar="FILE.csv",
        help="station_id,time,parameter,value[,flag]",
    )
    parser.add_argument(
        "--registry", type=Path, required=True, metavar="FILE.yaml", help="station registry with a network"
    )
    parser.add_argument("--format", choices=FORMATS, default="json", help="output format (default: json)")
    parser.add_argument("--standard", type=Path, metavar="FILE", help="standard (default: GB 3838-2002)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)")
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    """`ecowatch incidents` on its own (the entry point adds it with `add_parser`)."""
    parser = argparse.ArgumentParser(prog="ecowatch incidents")
    _arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Print the incidents; 0, or 2 with a message on stderr."""
    try:
        registry = _registry(args.registry)
        standard = _standard(args.standard)
        result = incidents_of(registry, standard, args.readings)
    except (_UsageError, ReadingsError, StandardError) as exc:
        print(f"ecowatch incidents: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"ecowatch incidents: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def incidents_of(
    registry: Registry, standard: Standard, readings: Path, config: IncidentConfig | None = None
) -> dict[str, Any]:
    """The incidents of a CSV file, as the JSON the command prints."""
    if registry.network is None:
        raise _UsageError("the registry has no network: section (config/network.py), nothing to follow")
    tracker = IncidentTracker(registry.network, config)
    rows = []
    skipped = 0
    limits: dict[tuple[str, str], float | None] = {}
    for result in read_results(readings, progress=False):
        station = registry.get(result.station_id)
        if station is None:
            skipped += 1
            continue
        key = (result.station_id, result.parameter)
        if key not in limits:
            limits[key] = upper_limit(standard, station, result.parameter)
        limit = limits[key]
        if limit is None or not counts(result.flag, result.value, limit):
            continue
        rows.append((result.time_ns, result.station_id, result.parameter, result.value, limit))
    rows.sort()
    last = 0
    for time_ns, station_id, item, value, limit in rows:
        tracker.observe(station_id, item, time_ns, value, limit)
        last = time_ns
    tracker.tick(last)
    incidents = sorted(tracker.incidents(), key=lambda i: (i.opened_ns, i.id))
    return {
        "incidents": [i.to_json() for i in incidents],
        "readings": len(rows),
        "unknown_station": skipped,
    }


def _registry(path: Path) -> Registry:
    try:
        return Registry.load(path)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # pydantic's ValidationError is a ValueError
        raise _UsageError(f"cannot load registry {path}: {exc}") from exc


def _standard(path: Path | None) -> Standard:
    try:
        return default_standard() if path is None else load_standard(path)
    except OSError as exc:
        raise _UsageError(f"cannot load standard {path}: {exc}") from exc
