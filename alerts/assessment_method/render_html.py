"""The report as one self-contained HTML page in Chinese, laid out for printing on A4 (landscape).

A title, the section table of a bureau's monthly report (table.py), the regional tables, the
reported values of every item, and notes stating the method and the rules in force (validity
thresholds, precision, the below-detection and over-range rules), so a printed page says how its
figures were made. No scripts, no external resources; every cell is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

from alerts.assessment_method import table
from alerts.assessment_method.report import Report

# WenQuanYi Micro Hei (Debian's CJK font) draws Ⅴ (U+2164) as a blank: Roman numerals come from a
# Latin font where one is installed, everything else from the CJK fonts.
_CSS: Final = """
@page { size: A4 landscape; margin: 12mm; }
@font-face { font-family: "Roman numerals"; unicode-range: U+2160-2188;
             src: local("DejaVu Sans"), local("Noto Sans"), local("Segoe UI"), local("Arial"); }
body { font-family: "Roman numerals", "Noto Sans CJK SC", "Microsoft YaHei", "WenQuanYi Micro Hei",
       sans-serif; font-size: 10pt; color: #000; margin: 0; }
h1 { font-size: 16pt; text-align: center; margin: 0 0 4mm; }
h2 { font-size: 12pt; margin: 5mm 0 2mm; }
p.meta { text-align: center; margin: 0 0 4mm; }
table { border-collapse: collapse; width: 100%; margin-bottom: 3mm; page-break-inside: auto; }
caption { text-align: left; font-weight: bold; padding: 1mm 0; }
th, td { border: 0.5pt solid #000; padding: 1mm 1.5mm; text-align: center; }
th { background: #e8e8e8; }
tr { page-break-inside: avoid; }
thead { display: table-header-group; }
td.name { text-align: left; white-space: nowrap; }
table.values { font-size: 8pt; }
table.values th, table.values td { padding: 0.5mm 0.8mm; }
td.bad { font-weight: bold; }
ol.notes { font-size: 8.5pt; padding-left: 5mm; }
"""


def render_html(report: Report) -> str:
    """The whole page."""
    rules = report.rules
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{escape(table.title(report))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(table.title(report))}</h1>",
        f'<p class="meta">评价标准：{escape(report.standard.name)}　评价方法：{escape(rules.method)}</p>',
        "<h2>一、断面水质状况</h2>",
        _table(table.section_headers(report), table.section_rows(report), bad_column="否"),
        "<h2>二、区域水质状况</h2>",
    ]
    for caption, headers, rows in table.region_tables(report):
        parts.append(_table(headers, rows, caption=caption))
    parts += [
        "<h2>三、断面监测值（评价时段均值）</h2>",
        _table(table.value_headers(report), table.value_rows(report), css="values"),
        "<h2>说明</h2>",
        _notes(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    caption: str = "",
    bad_column: str = "",
    css: str = "",
) -> str:
    out = [f'<table class="{css}">' if css else "<table>"]
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr></thead><tbody>")
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            css = ' class="name"' if i == 0 else ' class="bad"' if bad_column and cell == bad_column else ""
            cells.append(f"<td{css}>{escape(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _notes(report: Report) -> str:
    rules = report.rules
    v = rules.validity
    river, lake = _names(report, rules.required_items.river), _names(report, rules.required_items.lake)
    notes = [
        "断面水质类别按单因子评价法确定，取参评指标中最差的类别；缺少必评指标"
        f"（河流：{river}；湖库：{lake}）的断面不评价，以“—”表示，不计入比例。",
        f"有效数据仅为标记N的数据；日均值至少需{v.min_results_per_day}个有效数据，月均值至少需"
        f"{v.min_days_per_month}个有效日（手工监测项目1个），季度、年度均值为有效月均值的算术平均"
        f"（季度至少{v.min_months_per_quarter}个月，年度至少{v.min_months_per_year}个月）。",
        f"低于检出限的数据以检出限的{rules.below_detection.mean_factor:g}倍参与均值计算；均值低于检出限时"
        "报“<检出限”，按检出限评价。标记T（超量程）的数据不参与均值计算，评价值不低于该数据（以“≥”表示）。",
        "均值按各项目报告位数以GB/T 8170（四舍六入五成双）修约后评价。",
        "主要污染指标为超过Ⅲ类标准的指标（最多三项），括号内为超标倍数（均值/Ⅲ类标准限值−1）；"
        "pH、溶解氧、水温不计算超标倍数。",
        f"区域评价断面少于{rules.region_grades.min_sections_for_shares}个时，以各指标断面均值评价；"
        "否则按Ⅰ～Ⅲ类及劣Ⅴ类比例评价。达标率为达到水质目标的断面数占评价断面数的比例。",
        "环比、同比为Ⅰ～Ⅲ类比例的变化（百分点）。",
    ]
    return '<ol class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ol>"


def _names(report: Report, codes: Sequence[str]) -> str:
    return "、".join(report.rules.name_zh(report.standard, c) for c in codes)
