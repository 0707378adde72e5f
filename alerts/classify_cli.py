"""`ecowatch classify`: the GB 3838 class of a set of values, as one JSON object on stdout.

    ecowatch classify --water-body river --target III do=4.2 nh3n=1.8 codmn=5
    {"standard": "GB 3838-2002", ..., "class": "V", "compliant": false, "primary_pollutants": ["nh3n"],
     "parameters": {"do": "IV", "codmn": "III", "nh3n": "V"}, ..., "exceedance": {"nh3n": 0.8}, ...}

Codes are the standard's item codes (config/standards/gb3838-2002.yaml), values in the item's
unit. A section is classed only with the items the assessment method requires of its water body
(`required_items` in config/standards/assessment.yaml: pH, DO, CODMn, NH3-N, TP for rivers, TN
too for lakes and reservoirs): when one is missing the answer is "not assessable", never a class
from the items that happen to be given. The JSON then has `"assessable": false`, `"missing"`,
`"class": null` and `"class_of_given"` (the class of the values given, a bound: the section is
no better), and `compliant` is null unless the given values already miss the target; stderr
says `不可评价 / not assessable: missing required items ...`.

    ecowatch classify --target II ph=7.5
    {"standard": "GB 3838-2002", ..., "class": null, "compliant": null, ..., "assessable": false,
     "missing": ["do", "codmn", "nh3n", "tp"], "class_of_given": "I"}

Exit 0 with the JSON; exit 2 with a message on stderr for an argument that is not `code=value`, a
code the standard does not list, a value that is not a finite number, a code given twice, or a
standard or rules file that cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Final, get_args

from alerts.assessment_method.rules import DEFAULT_RULES_FILE, RulesError, default_rules, load_rules
from alerts.classify import classify
from config.registry import WaterClass
from config.standards import Standard, StandardError, WaterBody, default_standard, load_standard

# argparse's own exit status for a usage error; bad values get the same.
USAGE_ERROR: Final = 2
_TARGETS: Final = [c.value for c in WaterClass if c is not WaterClass.WORSE_THAN_V]


class _UsageError(Exception):
    pass


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `classify` subcommand; its handler is `run`, also set as the `func` default."""
    parser = subparsers.add_parser(
        "classify",
        help="classify values by GB 3838-2002 and print the result as JSON",
        description="Classify a monitoring point's values by the single-factor method of GB 3838-2002.",
    )
    parser.add_argument(
        "--water-body", choices=get_args(WaterBody), default="river", help="water body type (default: river)"
    )
    parser.add_argument("--target", choices=_TARGETS, help="target class; adds compliance to the output")
    parser.add_argument(
        "--standard", type=Path, metavar="FILE", help="standard file (default: the shipped GB 3838-2002)"
    )
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="assessment rules naming the required items (default: the shipped ones)",
    )
    parser.add_argument("values", nargs="+", metavar="code=value", help="e.g. do=4.2 nh3n=1.8")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the classification of `args.values` as one JSON object; 0, or 2 on a bad argument."""
    try:
        standard = _standard(args.standard)
        required = _required(args, standard)
        values = _parse_values(standard, args.values)
    except _UsageError as exc:
        print(f"ecowatch classify: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    target = None if args.target is None else WaterClass(args.target)
    result = classify(standard, values, args.water_body, target)
    out = result.to_json()
    missing = [code for code in required if code not in values]
    out["assessable"] = not missing
    out["missing"] = missing
    if missing:
        # Missing data never make a section better: no class; compliance only when already missed.
        out["class_of_given"] = out["class"]
        out["class"] = None
        if out["compliant"] is not False:
            out["compliant"] = None
        names = "、".join(f"{standard.items[code].name_zh} ({code})" for code in missing)
        print(
            f"ecowatch classify: 不可评价 / not assessable: missing required items {names}", file=sys.stderr
        )
    print(json.dumps(out, ensure_ascii=False))
    return 0


def _standard(path: Path | None) -> Standard:
    if path is None:
        return default_standard()
    try:
        return load_standard(path)
    except (OSError, StandardError) as exc:
        raise _UsageError(f"cannot load standard {path}: {exc}") from exc


def _required(args: argparse.Namespace, standard: Standard) -> tuple[str, ...]:
    """The items the method requires of the water body, from the rules file."""
    try:
        if args.rules is None and args.standard is None:
            rules = default_rules()
        else:
            rules = load_rules(args.rules or DEFAULT_RULES_FILE, standard)
    except RulesError as exc:
        raise _UsageError(f"cannot load rules: {exc}") from exc
    return rules.required_items.for_body(args.water_body)


def _parse_values(standard: Standard, arguments: list[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for argument in arguments:
        code, sep, text = argument.partition("=")
        code, text = code.strip(), text.strip()
        if not sep or not code or not text:
            raise _UsageError(f"{argument!r} is not code=value")
        if code not in standard.items:
            known = ", ".join(standard.items)
            raise _UsageError(f"unknown code {code!r}: {standard.name} lists {known}")
        if code in values:
            raise _UsageError(f"{code!r} given twice")
        try:
            value = float(text)
        except ValueError:
            raise _UsageError(f"{code}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise _UsageError(f"{code}: {text!r} is not a finite number")
        values[code] = value
    return values
