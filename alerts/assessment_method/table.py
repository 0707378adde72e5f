"""The report as the tables a bureau prints, in Chinese: shared by the HTML and XLSX renderers.

Section table (断面水质状况): 断面, 河流, 区县, 目标, 本月, 上月, 去年同期, 主要污染指标(超标倍数),
是否达标 — for a day 本日 / 前一日, for a quarter 本季度 / 上季度, for a year or the year to date
本年 / 本期 and no previous column. Classes print as the standard writes them (Ⅲ类, 劣Ⅴ类); a
section without a class as "—".
Regional tables (区县, 流域, 河流, 全部): 断面数, 评价断面数, Ⅰ～Ⅲ类比例, 劣Ⅴ类比例, 达标率, 水质状况,
and the change of the Ⅰ～Ⅲ类 share against the previous period and last year in percentage points.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Final

from alerts.assessment_method.region import GroupBy, RegionFigures
from alerts.assessment_method.report import RegionReport, Report, SectionReport
from alerts.assessment_method.section import SectionResult, item_order
from alerts.assessment_method.values import round_half_even
from config.registry import WaterClass

NONE: Final = "—"
ROMAN: Final = {"I": "Ⅰ", "II": "Ⅱ", "III": "Ⅲ", "IV": "Ⅳ", "V": "Ⅴ", "劣V": "劣Ⅴ"}
GROUP_ZH: Final[dict[GroupBy, str]] = {"district": "区县", "basin": "流域", "river": "河流"}
KIND_ZH: Final = {
    "day": ("本日", "前一日", "日报"),
    "month": ("本月", "上月", "月报"),
    "quarter": ("本季度", "上季度", "季报"),
    "year": ("本年", "", "年报"),
    "ytd": ("本期", "", "累计"),
}
REGION_HEADERS: Final = ("断面数", "评价断面数", "Ⅰ～Ⅲ类比例", "劣Ⅴ类比例", "达标率", "水质状况")


def title(report: Report) -> str:
    """地表水环境质量月报 with the period and the scope."""
    scope = "" if report.scope is None else f"{report.scope.name} "
    return f"{scope}{report.period.label_zh}地表水环境质量{KIND_ZH[report.period.kind][2]}"


def section_headers(report: Report) -> list[str]:
    now, before, _ = KIND_ZH[report.period.kind]
    compared = [before] if report.previous_period is not None else []
    return ["断面", "河流", "区县", "目标", now, *compared, "去年同期", "主要污染指标(超标倍数)", "是否达标"]


def section_rows(report: Report) -> list[list[str]]:
    rows = []
    for s in report.sections:
        station = s.current.station
        compared = [class_zh(s.previous)] if report.previous_period is not None else []
        rows.append(
            [
                station.name,
                station.river,
                station.district,
                class_zh_of(station.target_class),
                class_zh(s.current),
                *compared,
                class_zh(s.last_year),
                pollutants_zh(report, s),
                meets_zh(s.current.meets_target),
            ]
        )
    return rows


def value_codes(report: Report) -> list[str]:
    """The items some section of the report has a value of, in the standard's order."""
    present = {code for s in report.sections for code in s.current.values}
    return [code for code in item_order(report.standard, report.rules) if code in present]


def value_headers(report: Report) -> list[str]:
    """断面 and one column per reported item: 名称(单位)."""
    out = ["断面"]
    for code in value_codes(report):
        item = report.standard.items.get(code)
        unit = report.standard.unit_of(code) if item is not None else report.rules.extra_items[code].unit
        out.append(f"{report.rules.name_zh(report.standard, code)}({unit})")
    return out


def value_rows(report: Report) -> list[list[str]]:
    codes = value_codes(report)
    rows = []
    for s in report.sections:
        values = s.current.values
        rows.append([s.current.station.name, *(values[c].text if c in values else NONE for c in codes)])
    return rows


def region_headers(report: Report, group: str) -> list[str]:
    compared = ["Ⅰ～Ⅲ类比例环比"] if report.previous_period is not None else []
    return [group, *REGION_HEADERS, *compared, "Ⅰ～Ⅲ类比例同比", "排名"]


def region_row(report: Report, name: str, region: RegionReport) -> list[str]:
    fig = region.current
    compared = [change_zh(fig, region.previous)] if report.previous_period is not None else []
    return [
        name,
        str(fig.sections),
        str(fig.assessed),
        percent(fig.figure("share_i_iii")),
        percent(fig.figure("share_worse_than_v")),
        percent(fig.figure("compliance_rate")),
        fig.grade or NONE,
        *compared,
        change_zh(fig, region.last_year),
        NONE if region.rank is None else str(region.rank),
    ]


def region_tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """(caption, headers, rows) for the whole scope, then districts, basins and rivers."""
    whole = report.scope.name if report.scope is not None else "全部断面"
    tables = [("总体", region_headers(report, "范围"), [region_row(report, whole, report.overall)])]
    for by, zh in GROUP_ZH.items():
        rows = [region_row(report, name, r) for name, r in report.regions[by].items()]
        tables.append((f"按{zh}", region_headers(report, zh), rows))
    return tables


def class_zh_of(water_class: WaterClass | None) -> str:
    return NONE if water_class is None else f"{ROMAN[water_class.value]}类"


def class_zh(section: SectionResult | SectionReport | None) -> str:
    if isinstance(section, SectionReport):
        section = section.current
    return NONE if section is None else class_zh_of(section.water_class)


def pollutants_zh(report: Report, section: SectionReport) -> str:
    """总磷(0.30)、氨氮(0.20); an item without a multiple (pH, DO) by its name alone."""
    parts = []
    for p in section.current.primary_pollutants:
        name = report.rules.name_zh(report.standard, p.code)
        parts.append(name if p.multiple is None else f"{name}({p.multiple:f})")
    return "、".join(parts) if parts else NONE


def meets_zh(meets: bool | None) -> str:
    return NONE if meets is None else "是" if meets else "否"


def percent(value: Fraction | None) -> str:
    """58.3% (one decimal, GB/T 8170)."""
    if value is None:
        return NONE
    return f"{round_half_even(Decimal(value.numerator) * 100 / Decimal(value.denominator), 1):f}%"


def change_zh(now: RegionFigures, before: RegionFigures | None) -> str:
    """Change of the Ⅰ～Ⅲ类 share in percentage points: +8.3, -4.2, 0.0."""
    a = now.figure("share_i_iii")
    b = None if before is None else before.figure("share_i_iii")
    if a is None or b is None:
        return NONE
    delta = a - b
    points = round_half_even(Decimal(delta.numerator) * 100 / Decimal(delta.denominator), 1)
    return f"{'+' if points > 0 else ''}{points:f}"
