"""`ecowatch classify`: argument parsing, the JSON it prints and its usage errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

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


def test_worked_example_prints_class_primary_and_compliance(capsys: pytest.CaptureFixture[str]) -> None:
    """River, target III, DO 4.2, NH3-N 1.8, CODMn 5: class V, primary nh3n, not compliant."""
    code, data, err = _run(capsys, "--target", "III", "do=4.2", "nh3n=1.8", "codmn=5")
    assert code == 0
    assert err == ""
    assert data is not None
    assert data["class"] == "V"
    assert data["parameters"] == {"do": "IV", "codmn": "III", "nh3n": "V"}
    assert data["primary_pollutants"] == ["nh3n"]
    assert data["compliant"] is False
    assert data["exceedance"] == {"nh3n": 0.8}
    assert data["water_body"] == "river"


def test_without_target_compliance_is_null(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --target the output has compliant null and ranks against class III."""
    code, data, _ = _run(capsys, "codmn=8")
    assert code == 0
    assert data is not None
    assert data["compliant"] is None
    assert data["target"] is None
    assert data["primary_pollutants"] == ["codmn"]


def test_water_body_selects_lake_limits(capsys: pytest.CaptureFixture[str]) -> None:
    """--water-body lake classifies TP by the lake limits and reports TN separately."""
    code, data, _ = _run(capsys, "--water-body", "lake", "tp=0.06", "tn=1.2")
    assert code == 0
    assert data is not None
    assert data["class"] == "IV"
    assert data["separately_assessed"] == {"tn": "IV"}
    _, river, _ = _run(capsys, "tp=0.06", "tn=1.2")
    assert river is not None
    assert river["class"] == "II"


def test_output_is_one_line_of_unescaped_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The output is one JSON line with 劣V written as is, not as \\u escapes."""
    assert run(_parse("ph=9.5")) == 0
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
    code, data, _ = _run(capsys, "--standard", str(path), "nh3n=0.45")
    assert code == 0
    assert data is not None
    assert data["standard"] == "strict local"
    assert data["class"] == "V"


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
