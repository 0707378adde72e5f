"""`ecowatch report` end to end: a month of 4-hourly results of twelve sections through the CLI.

The data (report_data.py): every section's items alternate between two values over the six
results of each day, so each daily and monthly value is their mean; the sections are built so
that each figure below was worked out by hand (see `SECTIONS` there). October has results for
s01–s03 only (上月); November 2025 has none (去年同期).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped, unused-ignore]

from alerts.assessment_method.report_cli import add_parser, run
from tests.alerts.assessment_method.report_data import write_dataset


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_dataset(tmp_path_factory.mktemp("report"))


def _run(files: tuple[Path, Path], out: Path, *extra: str) -> int:
    registry, readings = files
    parser = argparse.ArgumentParser(prog="ecowatch")
    add_parser(parser.add_subparsers(dest="command"))
    argv = ["report", "--registry", str(registry), "--readings", str(readings), "--output", str(out), *extra]
    return run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def november(files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("json") / "report.json"
    assert _run(files, out, "--period", "2026-11") == 0
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def _sections(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["station_id"]: s for s in report["sections"]}


def test_sections_classes_targets_and_pollutants(november: dict[str, Any]) -> None:
    """Every section's class, compliance, main pollutants and 上月 class, as worked out by hand."""
    sections = _sections(november)
    assert list(sections) == [f"s{i:02d}" for i in range(1, 13)]  # the hydrology station is not a section
    got = {
        sid: (s["class"], s["meets_target"], s["assessable"],
              [(p["parameter"], p["multiple"]) for p in s["primary_pollutants"]], s["previous_class"])
        for sid, s in sections.items()
    }  # fmt: skip
    assert got == {
        "s01": ("II", True, True, [], "III"),
        "s02": ("III", False, True, [], "II"),
        "s03": ("V", False, True, [("tp", 1.0), ("nh3n", 0.3), ("codmn", 0.17)], "V"),
        "s04": ("劣V", False, True, [("tp", 2.0), ("codmn", 1.83), ("nh3n", 1.5)], None),
        "s05": ("II", True, True, [], None),
        "s06": ("II", True, True, [], None),
        "s07": ("III", False, True, [], None),
        "s08": (None, None, False, [], None),
        "s09": (None, None, False, [], None),
        "s10": ("III", True, True, [], None),
        "s11": ("劣V", False, True, [("nh3n", 1.5)], None),
        "s12": ("I", True, True, [], None),
    }
    assert all(s["last_year_class"] is None for s in sections.values())
    assert november["period"] == {"label": "2026-11", "label_zh": "2026年11月", "kind": "month",
                                  "start": "2026-11-01", "end": "2026-12-01"}  # fmt: skip


def test_section_details(november: dict[str, Any]) -> None:
    """Values as reported: "<DL", GB/T 8170 rounding, T lower bounds, lake TN and TLI, missing items."""
    s = _sections(november)
    assert s["s01"]["values"]["nh3n"] == {"value": 0.3, "text": "0.300", "class": "II", "below_dl": False,
                                          "at_least": False, "days": 30, "months": 1}  # fmt: skip
    assert s["s01"]["grade"] == "优"
    assert s["s02"]["worse_than_target"] == [{"parameter": "nh3n", "class": "III", "multiple": 1.0}]
    assert s["s04"]["values"]["do"]["text"] == "1.60"
    assert s["s04"]["grade"] == "重度污染"
    assert (s["s05"]["values"]["tp"]["text"], s["s05"]["values"]["tp"]["class"]) == ("<0.01", "I")
    assert s["s05"]["values"]["nh3n"]["text"] == "0.072"  # (0.025 + 0.12) / 2 = 0.0725, half to even
    assert s["s06"]["values"]["codmn"]["text"] == "4.00"  # half up would say 4.01, class III
    assert s["s07"]["values"]["codmn"]["text"] == "4.04"
    assert s["s07"]["worse_than_target"] == [{"parameter": "codmn", "class": "III", "multiple": 0.01}]
    assert s["s08"]["missing"] == ["tp"]
    assert s["s08"]["worse_than_target"] == [{"parameter": "nh3n", "class": "V", "multiple": 0.7}]
    assert s["s09"]["missing"] == ["nh3n"]
    assert "nh3n" not in s["s09"]["values"]
    assert s["s10"]["values"]["tp"]["class"] == "III"
    assert s["s10"]["separately_assessed"] == {"tn": "IV"}
    assert s["s10"]["trophic"] == {
        "tli": 49.7,
        "grade": "中营养",
        "items": ["chla", "tp", "tn", "sd", "codmn"],
    }
    assert s["s10"]["values"]["sd"]["text"] == "1.00"
    assert s["s11"]["values"]["nh3n"]["text"] == "≥2.500"
    assert s["s11"]["values"]["nh3n"]["at_least"] is True
    assert s["s11"]["trophic"] is None
    assert s["s12"]["values"]["tp"]["text"] == "0.020"
    assert "cond" not in s["s01"]["values"]


def _figures(region: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("sections", "assessed", "share_i_iii", "share_worse_than_v", "compliance_rate", "grade")
    return tuple(region[k] for k in keys)


def test_districts(november: dict[str, Any]) -> None:
    """District figures, grades (by shares from five sections, else by averaged values) and ranks."""
    districts = november["regions"]["district"]
    assert {name: (*_figures(r), r["grade_basis"], r["rank"]) for name, r in districts.items()} == {
        "万州区": (3, 3, 0.6667, 0.3333, 0.6667, "良好", "mean_values", 2),
        "江北区": (4, 2, 1.0, 0.0, 0.5, "良好", "mean_values", 1),
        "渝中区": (5, 5, 0.6, 0.2, 0.4, "中度污染", "shares", 3),
    }
    assert districts["江北区"]["mean_class"] == "III"  # CODMn (4.00 + 4.04) / 2 = 4.02


def test_basins_rivers_and_overall(november: dict[str, Any]) -> None:
    """Basin, river and whole-registry figures."""
    regions = november["regions"]
    assert {name: _figures(r) for name, r in regions["basin"].items()} == {
        "乌江": (2, 1, 1.0, 0.0, 1.0, "优"),
        "长江": (10, 9, 0.6667, 0.2222, 0.4444, "中度污染"),
    }
    assert {name: _figures(r) for name, r in regions["river"].items()} == {
        "乌江": (2, 1, 1.0, 0.0, 1.0, "优"),
        "嘉陵江": (4, 3, 1.0, 0.0, 0.6667, "优"),
        "小江": (1, 1, 1.0, 0.0, 1.0, "良好"),
        "汤溪河": (1, 1, 0.0, 1.0, 0.0, "重度污染"),
        "长江": (4, 4, 0.5, 0.25, 0.25, "轻度污染"),
    }
    assert regions["river"]["长江"]["mean_class"] == "IV"
    assert _figures(november["overall"]) == (12, 10, 0.7, 0.2, 0.5, "中度污染")


def test_changes_against_last_month_and_last_year(november: dict[str, Any]) -> None:
    """环比 from October's three sections; 同比 has no data: figures null, never zero."""
    district = november["regions"]["district"]["渝中区"]
    assert _figures(district["previous"]) == (5, 3, 0.6667, 0.0, 0.3333, "良好")
    assert district["change_vs_previous"] == {
        "share_i_iii": -0.0667, "share_worse_than_v": 0.2, "compliance_rate": 0.0667,
    }  # fmt: skip
    assert district["changed_vs_previous"] == [
        {"station_id": "s01", "from": "III", "to": "II", "direction": "better"},
        {"station_id": "s02", "from": "II", "to": "III", "direction": "worse"},
    ]
    assert _figures(district["last_year"]) == (5, 0, None, None, None, None)
    assert district["change_vs_last_year"] == {
        "share_i_iii": None, "share_worse_than_v": None, "compliance_rate": None,
    }  # fmt: skip
    assert district["changed_vs_last_year"] == []
    north = november["regions"]["district"]["江北区"]
    assert north["change_vs_previous"]["share_i_iii"] is None
    assert len(november["overall"]["changed_vs_previous"]) == 2


def test_left_out_results_are_counted_on_stderr(files: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Unknown stations, unassessed items (conductivity) and D/S-flagged results are counted."""
    assert _run(files, tmp_path / "r.json", "--period", "2026-11") == 0
    err = capsys.readouterr().err
    assert "6 results of stations not in the registry left out" in err
    assert f"{(12 + 3) * 180 + 18} results of items not assessed left out" in err  # cond; Oct has 186 slots
    assert "67 results flagged as not valid (F, M, S, D, C, B; T where higher is cleaner) left out" in err


def test_xlsx_opens_with_the_bureau_table(files: tuple[Path, Path], tmp_path: Path) -> None:
    """The workbook has the monthly section table, the regional tables and the values."""
    out = tmp_path / "report.xlsx"
    assert _run(files, out, "--period", "2026-11", "--format", "xlsx") == 0
    book = load_workbook(out)
    assert book.sheetnames == ["断面水质", "区域水质", "监测值"]
    sheet = book["断面水质"]
    assert sheet["A1"].value == "2026年11月地表水环境质量月报"
    rows = [[cell.value for cell in row] for row in sheet.iter_rows(min_row=2)]
    assert rows[0] == [
        "断面",
        "河流",
        "区县",
        "目标",
        "本月",
        "上月",
        "去年同期",
        "主要污染指标(超标倍数)",
        "是否达标",
    ]
    assert rows[3] == ["断面03", "长江", "渝中区", "Ⅲ类", "Ⅴ类", "Ⅴ类", "—",
                       "总磷(1.00)、氨氮(0.30)、高锰酸盐指数(0.17)", "否"]  # fmt: skip
    assert rows[8] == ["断面08", "嘉陵江", "江北区", "Ⅲ类", "—", "—", "—", "—", "—"]
    assert rows[11][4] == "劣Ⅴ类"
    regions = [[cell.value for cell in row] for row in book["区域水质"].iter_rows()]
    assert ["渝中区", "5", "5", "60.0%", "20.0%", "40.0%", "中度污染", "-6.7", "—", "3"] in regions
    values = book["监测值"]
    header = [cell.value for cell in values[2]]
    assert header[:3] == ["断面", "水温(°C)", "pH值(1)"]
    tp = header.index("总磷(mg/L)") + 1
    assert values.cell(row=7, column=tp).value == "<0.01"
    codmn = values.cell(row=8, column=header.index("高锰酸盐指数(mg/L)") + 1)
    assert (codmn.value, codmn.number_format) == (4.0, "0.00")
    assert book["断面水质"].page_setup.orientation == "landscape"


def test_html_is_a_chinese_a4_page(files: tuple[Path, Path], tmp_path: Path) -> None:
    """The HTML is the bureau's table in Chinese, set up for A4, escaped, with the notes."""
    out = tmp_path / "report.html"
    assert _run(files, out, "--period", "2026-11", "--format", "html") == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in page
    assert "size: A4 landscape" in page
    for header in (
        "断面",
        "河流",
        "区县",
        "目标",
        "本月",
        "上月",
        "去年同期",
        "主要污染指标(超标倍数)",
        "是否达标",
    ):
        assert f"<th>{header}</th>" in page
    assert "<h1>2026年11月地表水环境质量月报</h1>" in page
    assert "总磷(2.00)、高锰酸盐指数(1.83)、氨氮(1.50)" in page
    assert "&lt;0.01" in page
    assert "四舍六入五成双" in page


def test_csv_output(files: tuple[Path, Path], tmp_path: Path) -> None:
    """One row per section with classes, pollutants and the values as printed."""
    out = tmp_path / "report.csv"
    assert _run(files, out, "--period", "2026-11", "--format", "csv") == 0
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 12
    s03 = rows[2]
    assert (s03["station_id"], s03["class"], s03["previous_class"], s03["meets_target"]) == (
        "s03",
        "V",
        "V",
        "false",
    )
    assert s03["primary_pollutants"] == "tp:1.00;nh3n:0.30;codmn:0.17"
    assert rows[4]["tp"] == "<0.01"
    assert (rows[7]["class"], rows[7]["assessable"], rows[7]["meets_target"]) == ("", "false", "")


def test_region_scope(files: tuple[Path, Path], tmp_path: Path) -> None:
    """`--region district:江北区` reports its four sections and sums up only them."""
    out = tmp_path / "north.json"
    assert _run(files, out, "--period", "2026-11", "--region", "district:江北区") == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [s["station_id"] for s in data["sections"]] == ["s06", "s07", "s08", "s09"]
    assert list(data["regions"]["district"]) == ["江北区"]
    assert _figures(data["overall"]) == (4, 2, 1.0, 0.0, 0.5, "良好")
    assert data["scope"] == {"kind": "district", "name": "江北区"}


def test_quarter_and_ytd_need_enough_months(files: tuple[Path, Path], tmp_path: Path) -> None:
    """Q4 has two valid months for s01–s03 only (October, November): they are assessed from both."""
    out = tmp_path / "q4.json"
    assert _run(files, out, "--period", "2026-Q4") == 0
    sections = _sections(json.loads(out.read_text(encoding="utf-8")))
    assert [sid for sid, s in sections.items() if s["assessable"]] == ["s01", "s02", "s03"]
    assert sections["s01"]["values"]["nh3n"]["text"] == "0.550"  # (0.8 + 0.3) / 2
    assert sections["s01"]["values"]["nh3n"]["months"] == 2
    assert _run(files, tmp_path / "ytd.json", "--period", "ytd", "--today", "2026-12-01") == 0
    ytd = json.loads((tmp_path / "ytd.json").read_text(encoding="utf-8"))
    assert ytd["overall"]["assessed"] == 0  # 2 valid months of 11: eight needed


def test_one_day(files: tuple[Path, Path], tmp_path: Path) -> None:
    """`--period 2026-11-15`: the day of s11's saturated NH3-N analyser; s09's D-flagged 5th unassessable."""
    out = tmp_path / "day.json"
    assert _run(files, out, "--period", "2026-11-15") == 0
    sections = _sections(json.loads(out.read_text(encoding="utf-8")))
    assert (sections["s11"]["class"], sections["s11"]["values"]["nh3n"]["text"]) == ("劣V", "≥2.500")
    assert sections["s09"]["class"] == "II"
    assert _run(files, out, "--period", "2026-11-05") == 0
    sections = _sections(json.loads(out.read_text(encoding="utf-8")))
    assert (sections["s09"]["class"], sections["s09"]["meets_target"], sections["s09"]["missing"]) == (
        None,
        None,
        ["nh3n"],
    )
    assert sections["s11"]["class"] == "II"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--period", "2026-13"], "month must be 01..12"),
        (["--period", "2026-11", "--region", "district:不存在区"], "known: 万州区, 江北区, 渝中区"),
        (["--period", "2026-11", "--region", "town:x"], "use district:NAME"),
    ],
)
def test_usage_errors(files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      argv: list[str], message: str) -> None:  # fmt: skip
    """Bad arguments exit 2 with a message naming the fault."""
    assert _run(files, tmp_path / "x.json", *argv) == 2
    assert message in capsys.readouterr().err


def test_bad_csv_row_names_its_line(files: tuple[Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A value that is not a number stops the report, naming the file and line."""
    registry, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("station_id,time,parameter,value\ns01,2026-11-01T00:00:00+08:00,ph,7.1\n"
                   "s01,2026-11-01T04:00:00+08:00,ph,seven\n", encoding="utf-8")  # fmt: skip
    assert _run((registry, bad), tmp_path / "x.json", "--period", "2026-11") == 2
    assert "bad.csv, line 3" in capsys.readouterr().err
    naive = tmp_path / "naive.csv"
    naive.write_text("station_id,time,parameter,value\ns01,2026-11-01T00:00:00,ph,7.1\n", encoding="utf-8")
    assert _run((registry, naive), tmp_path / "x.json", "--period", "2026-11") == 2
    assert "no offset" in capsys.readouterr().err
