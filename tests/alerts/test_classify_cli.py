"""`ecowatch classify`: argument parsing, the JSON it prints and its usage errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.assessment_method.rules import DEFAULT_RULES_FILE
from alerts.classify_cli import add_parser, run
from config.standards import DEFAULT_STANDARD_FILE


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ecowatch")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["classify", *argv])


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any] | None, str]:
    code = run(_parse(*argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else None), err


# The items the assessment method requires of a river (config/standards/assessment.yaml), clean.
RIVER: tuple[str, ...] = ("ph=7.5", "tp=0.08")
LAKE: tuple[str, ...] = ("ph=7.5", "do=8", "codmn=3", "nh3n=0.3")


def test_worked_example_prints_class_primary_and_compliance(capsys: pytest.CaptureFixture[str]) -> None:
    """River, target III, DO 4.2, NH3-N 1.8, CODMn 5 (pH, TP clean): class V, primary nh3n, not compliant."""
    code, data, err = _run(capsys, "--target", "III", "do=4.2", "nh3n=1.8", "codmn=5", *RIVER)
    assert code == 0
    assert err == ""
    assert data is not None
    assert (data["class"], data["assessable"], data["missing"]) == ("V", True, [])
    assert data["parameters"] == {"ph": "I", "do": "IV", "codmn": "III", "nh3n": "V", "tp": "II"}
    assert data["primary_pollutants"] == ["nh3n"]
    assert data["compliant"] is False
    assert data["exceedance"] == {"nh3n": 0.8}
    assert data["water_body"] == "river"
    assert "class_of_given" not in data


def test_a_sample_without_required_items_is_not_assessable(capsys: pytest.CaptureFixture[str]) -> None:
    """`--target II ph=7.5` is not "class I, meets target": no class, compliance unknown, and why."""
    code, data, err = _run(capsys, "--target", "II", "ph=7.5")
    assert code == 0
    assert data is not None
    assert (data["class"], data["compliant"], data["assessable"]) == (None, None, False)
    assert data["missing"] == ["do", "codmn", "nh3n", "tp"]
    assert data["class_of_given"] == "I"
    assert err == (
        "ecowatch classify: 不可评价 / not assessable: missing required items "
        "溶解氧 (do)、高锰酸盐指数 (codmn)、氨氮 (nh3n)、总磷 (tp)\n"
    )


def test_given_values_that_already_miss_the_target_stay_non_compliant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Missing items can only make a section worse: NH3-N 1.8 misses target III whatever else comes."""
    code, data, err = _run(capsys, "--target", "III", "nh3n=1.8")
    assert code == 0
    assert data is not None
    assert (data["class"], data["class_of_given"], data["compliant"]) == (None, "V", False)
    assert "not assessable" in err


def test_without_target_compliance_is_null(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --target the output has compliant null and ranks against class III."""
    code, data, _ = _run(capsys, "codmn=8", "do=8", "nh3n=0.3", *RIVER)
    assert code == 0
    assert data is not None
    assert data["compliant"] is None
    assert data["target"] is None
    assert data["primary_pollutants"] == ["codmn"]


def test_water_body_selects_lake_limits(capsys: pytest.CaptureFixture[str]) -> None:
    """--water-body lake classifies TP by the lake limits, reports TN separately and requires it."""
    code, data, _ = _run(capsys, "--water-body", "lake", "tp=0.06", "tn=1.2", *LAKE)
    assert code == 0
    assert data is not None
    assert data["class"] == "IV"
    assert data["separately_assessed"] == {"tn": "IV"}
    _, river, _ = _run(capsys, "tp=0.06", "tn=1.2", *LAKE)
    assert river is not None
    assert river["class"] == "II"
    _, without_tn, err = _run(capsys, "--water-body", "reservoir", "tp=0.06", *LAKE)
    assert without_tn is not None
    assert (without_tn["class"], without_tn["missing"]) == (None, ["tn"])
    assert "总氮 (tn)" in err


def test_output_is_one_line_of_unescaped_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The output is one JSON line with 劣V written as is, not as \\u escapes."""
    assert run(_parse("ph=9.5", "do=8", "codmn=3", "nh3n=0.3", "tp=0.08")) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert '"class": "劣V"' in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["do"], "'do' is not code=value"),
        (["do="], "'do=' is not code=value"),
        (["=4"], "'=4' is not code=value"),
        (["xyz=1"], "unknown code 'xyz'"),
        (["cond=350"], "unknown code 'cond'"),
        (["do=abc"], "do: 'abc' is not a number"),
        (["do=nan"], "do: 'nan' is not a finite number"),
        (["do=-inf"], "do: '-inf' is not a finite number"),
        (["do=8", "do=7"], "'do' given twice"),
    ],
)
def test_bad_values_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """A malformed code=value, an unknown code or a non-number exits 2, says why and prints no JSON."""
    code, data, err = _run(capsys, *argv)
    assert code == 2
    assert data is None
    assert err.startswith("ecowatch classify: error: ")
    assert message in err


def test_unknown_target_is_a_usage_error() -> None:
    """--target accepts I..V only; anything else is argparse's usage error, exit 2."""
    with pytest.raises(SystemExit) as caught:
        _parse("--target", "劣V", "do=8")
    assert caught.value.code == 2


def test_standard_file_option_uses_that_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--standard FILE classifies by that file's limits."""
    raw = yaml.safe_load(DEFAULT_STANDARD_FILE.read_text(encoding="utf-8"))
    raw["standard"] = "strict local"
    raw["items"]["nh3n"]["limits"] = [0.1, 0.2, 0.3, 0.4, 0.5]
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    code, data, _ = _run(capsys, "--standard", str(path), "nh3n=0.45", "do=8", "codmn=3", *RIVER)
    assert code == 0
    assert data is not None
    assert data["standard"] == "strict local"
    assert data["class"] == "V"


def test_rules_file_option_names_the_required_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rules FILE: a scheme that requires NH3-N alone classes a sample of NH3-N."""
    raw = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    raw["required_items"] = {"river": ["nh3n"], "lake": ["nh3n"]}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    code, data, err = _run(capsys, "--rules", str(path), "nh3n=0.45")
    assert (code, err) == (0, "")
    assert data is not None
    assert (data["class"], data["assessable"]) == ("II", True)
    assert _run(capsys, "--rules", str(tmp_path / "none.yaml"), "nh3n=0.45")[0] == 2


@pytest.mark.parametrize("content", [None, "items: {nh3n: {kind: max, limits: [1, 2]}}\n"])
def test_unusable_standard_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    """A missing or malformed --standard file exits 2 naming the file."""
    path = tmp_path / "std.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, data, err = _run(capsys, "--standard", str(path), "nh3n=0.45")
    assert code == 2
    assert data is None
    assert f"cannot load standard {path}" in err


def test_parser_sets_run_as_the_handler() -> None:
    """The subcommand's namespace carries `run` as func, for the CLI's dispatcher."""
    assert _parse("do=8").func is run
