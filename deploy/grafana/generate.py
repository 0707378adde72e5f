"""Write the Grafana dashboard for ecowatch's InfluxDB 2 data: GB 3838 limits and stations as data.

The dashboard (deploy/grafana/dashboards/ecowatch.json, provisioned by deploy/compose.yaml) reads the
bucket ecowatch writes to with Flux. Nothing domain-specific is typed into it by hand: the class
limits come from the standard file (config/standards/gb3838-2002.yaml), the stations' names,
coordinates, target classes and water bodies from the registry, the parameter names and units from
the catalogue and the flags that count for compliance from `ingest.model`. Change one of those and
run this again; a test fails while the committed JSON differs from what this script writes.

Panels:
- map and table of the stations, coloured by the class of their latest readings, against target:
  the single-factor method in Flux (worst class of the assessed items; a value on a limit meets the
  better class; TP of lakes and reservoirs by its own limits; readings flagged other than N left
  out), with the primary pollutants (items worse than the target);
- compliance: the share of reporting stations that meet their target, overall and per district;
- the latest value of every water-quality parameter per station, coloured by class (Grafana colours
  a value exactly on a limit as the worse class; the map and table above do not);
- trends of every parameter for one station (`station` variable) with the class III limit drawn,
  the reference class of the 2011 assessment method;
- annotations: the first reading of each run worse than the station's target class, and the start
  of each run of HJ 212 data flags other than N (fault, calibration, maintenance ...). ecowatch's
  own alert events are not in InfluxDB; these are recomputed from the readings.

Usage (from the repository root, with the project's virtualenv):
    .venv/bin/python -m deploy.grafana.generate                 # rewrite the committed JSON
    .venv/bin/python -m deploy.grafana.generate --check         # exit 1 if it is stale
    .venv/bin/python -m deploy.grafana.generate --registry /etc/ecowatch/stations.yaml \\
        --output /etc/grafana/dashboards/ecowatch/ecowatch.json # for your own stations
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from config import DATA_DIR
from config.registry import Registry
from config.standards import DEFAULT_STANDARD_FILE, load_standard
from deploy.grafana.dashboard import build_dashboard

HERE: Final = Path(__file__).resolve().parent
DEFAULT_OUTPUT: Final = HERE / "dashboards" / "ecowatch.json"
DEFAULT_REGISTRY: Final = DATA_DIR / "stations" / "chongqing-demo.yaml"


def render(dashboard: Mapping[str, Any]) -> str:
    """Stable text: the same inputs give the same bytes, so the committed file can be compared."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the ecowatch Grafana dashboard JSON.")
    parser.add_argument("--standard", type=Path, default=DEFAULT_STANDARD_FILE, help="standard YAML")
    parser.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY, help="station registry YAML")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="dashboard JSON to write")
    parser.add_argument(
        "--check", action="store_true", help="only compare with --output; exit 1 if it differs"
    )
    args = parser.parse_args(argv)
    text = render(build_dashboard(load_standard(args.standard), Registry.load(args.registry)))
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is stale: run deploy/grafana/generate.py", file=sys.stderr)
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
