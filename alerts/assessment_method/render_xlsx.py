"""The report as an Excel workbook (openpyxl), three sheets set up for A4 landscape printing.

断面水质: the section table of a bureau's monthly report under the report's title; 区域水质: the
regional tables one under another; 监测值: each section's reported value of every item, plain
numbers as numbers (with the item's decimal places), "<DL" and "≥" values as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import Any

from openpyxl import Workbook  # type: ignore[import-untyped, unused-ignore]
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side  # type: ignore[import-untyped, unused-ignore]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped, unused-ignore]

from alerts.assessment_method import table
from alerts.assessment_method.report import Report

_THIN = Side(style="thin", color="000000")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEADER_FILL = PatternFill("solid", fgColor="E8E8E8")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)


def render_xlsx(report: Report) -> bytes:
    """The workbook as the bytes of an .xlsx file."""
    book = Workbook()
    for default in book.worksheets:  # a fresh workbook's default sheet; ours are created by name
        book.remove(default)
    sections = book.create_sheet("断面水质")
    headers = table.section_headers(report)
    _title(sections, table.title(report), len(headers))
    _block(sections, 2, headers, table.section_rows(report))
    _layout(sections, [18, 10, 10, 8, 8, 8, 10, 28, 8][: len(headers)] + [10] * max(0, len(headers) - 9))

    regions = book.create_sheet("区域水质")
    _title(regions, table.title(report) + "（区域）", 10)
    row = 2
    for caption, headers_, rows in table.region_tables(report):
        regions.cell(row=row, column=1, value=caption).font = Font(bold=True)
        row = _block(regions, row + 1, headers_, rows) + 1
    _layout(regions, [14, 8, 10, 12, 12, 10, 10, 14, 14, 8], title_rows=None)

    values = book.create_sheet("监测值")
    value_headers = table.value_headers(report)
    _title(values, table.title(report) + "（监测值）", len(value_headers))
    codes = table.value_codes(report)
    rows_out: list[list[Any]] = []
    for s in report.sections:
        line: list[Any] = [s.current.station.name]
        for code in codes:
            v = s.current.values.get(code)
            line.append(table.NONE if v is None else v.text if v.below_dl or v.at_least else float(v.value))
        rows_out.append(line)
    _block(values, 2, value_headers, rows_out)
    for index, code in enumerate(codes, start=2):
        places = report.rules.decimals[code]
        for (cell,) in values.iter_rows(min_row=3, min_col=index, max_col=index):
            cell.number_format = "0." + "0" * places if places else "0"
    _layout(values, [18] + [11] * len(codes))

    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _title(sheet: Any, text: str, width: int) -> None:
    sheet.cell(row=1, column=1, value=text).font = Font(bold=True, size=14)
    sheet.cell(row=1, column=1).alignment = Alignment(horizontal="center")
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=max(width, 1))


def _block(sheet: Any, first_row: int, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Headers and rows from `first_row`, bordered; returns the row after the block."""
    for column, header in enumerate(headers, start=1):
        cell = sheet.cell(row=first_row, column=column, value=header)
        cell.font, cell.fill, cell.border, cell.alignment = Font(bold=True), _HEADER_FILL, _BORDER, _CENTER
    for offset, values in enumerate(rows, start=1):
        for column, value in enumerate(values, start=1):
            cell = sheet.cell(row=first_row + offset, column=column, value=value)
            cell.border, cell.alignment = _BORDER, _CENTER
    return first_row + len(rows) + 1


def _layout(sheet: Any, widths: Sequence[int], title_rows: str | None = "2:2") -> None:
    for column, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    if title_rows is not None:  # the header row repeats on every printed page
        sheet.print_title_rows = title_rows
