"""The report's sections as CSV for machines and audits: one row per section, English headers.

Columns: station_id, name, river, district, basin, water_body, target, class, previous_class,
last_year_class, assessable, meets_target, grade, primary_pollutants (`tp:0.30;nh3n:0.20`, an
item without a multiple by its code alone), worse_than_target (codes), then one column per
reported item with the value as printed (`0.120`, `<0.01`, `≥2.500`; empty when none). Classes as in
the JSON ("I".."V", "劣V"); booleans `true`/`false`; empty for null. Regions are in the JSON, XLSX
and HTML reports.
"""

from __future__ import annotations

import csv
import io

from alerts.assessment_method.report import Report
from alerts.assessment_method.section import Pollutant, SectionResult, item_order


def render_csv(report: Report) -> str:
    """The CSV text, header first, `\\r\\n` line ends as RFC 4180 has them."""
    codes = item_order(report.standard, report.rules)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "station_id",
            "name",
            "river",
            "district",
            "basin",
            "water_body",
            "target",
            "class",
            "previous_class",
            "last_year_class",
            "assessable",
            "meets_target",
            "grade",
            "primary_pollutants",
            "worse_than_target",
            *codes,
        ]
    )
    for s in report.sections:
        now = s.current
        station = now.station
        writer.writerow(
            [
                station.id,
                station.name,
                station.river,
                station.district,
                station.basin,
                station.water_body,
                station.target_class.value,
                _class(now),
                _class(s.previous),
                _class(s.last_year),
                _bool(now.assessable),
                _bool(now.meets_target),
                now.grade or "",
                ";".join(_pollutant(p) for p in now.primary_pollutants),
                ";".join(p.code for p in now.worse_than_target),
                *(now.values[c].text if c in now.values else "" for c in codes),
            ]
        )
    return buffer.getvalue()


def _pollutant(p: Pollutant) -> str:
    return p.code if p.multiple is None else f"{p.code}:{p.multiple:f}"


def _class(section: SectionResult | None) -> str:
    return "" if section is None or section.water_class is None else section.water_class.value


def _bool(value: bool | None) -> str:
    return "" if value is None else "true" if value else "false"
