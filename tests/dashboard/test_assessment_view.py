"""The assessment view in a real headless Chromium (Debian's, driven by Playwright), in Chinese and English.

The month of twelve sections of the report tests (tests/alerts/assessment_method/report_data.py)
is written through the SQLite sink; the alert service reads it back through the store reader
(the daemon's wiring) to answer GET /api/v1/assessment, and the page, opened at #assessment,
must show what that API says: every section's class, compliance and main pollutants, the overall
figures and the district ranking, in Chinese by default, and in English after one click, which
the next visit remembers. The Chinese page is saved as /tmp/assessment-view.png for the lead and
as test-artifacts/assessment-view.png.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright

import ingest.app.http
from alerts.config import AlertsConfig
from alerts.service import AlertService
from config.registry import Registry
from ingest.app.assessment_source import AssessmentConfig, make_source
from ingest.app.dashboard import PUBLIC_PATHS, Dashboard, DashboardConfig
from ingest.app.http import HTTPService
from ingest.app.query import SQLiteQuery
from ingest.sinks.sqlite import SQLiteSink, SQLiteSinkConfig
from tests.alerts.assessment_method.report_data import readings_of, write_dataset
from tests.dashboard.support import CHROMIUM, CHROMIUM_ARGS
from tests.dashboard.test_dashboard_browser import ARTIFACTS
from tests.servers import http_request

pytestmark = pytest.mark.integration

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
SCREENSHOT: Final = Path("/tmp/assessment-view.png")  # where the lead asked for it
DEADLINE_MS: Final = 30_000


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Served:
    base: str

    def api(self, path: str) -> Any:
        status, body = http_request("GET", self.base + path)
        assert status == 200, body
        return orjson.loads(body)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """The daemon's pieces on loopback: SQLite sink, alert service with the store reader, dashboard."""
    monkeypatch.setattr(ingest.app.http, "OPEN_PATHS", ingest.app.http.OPEN_PATHS | PUBLIC_PATHS)
    registry_file, readings = write_dataset(tmp_path)
    registry = Registry.load(registry_file)
    sink_config = SQLiteSinkConfig(name="local", path=tmp_path / "readings.db")
    sink = SQLiteSink(sink_config)
    rows = readings_of(readings, registry)
    for i in range(0, len(rows), 5000):
        sink.write(rows[i : i + 5000])
    sink.close()
    clock = Clock(datetime(2026, 12, 2, 9, tzinfo=SHANGHAI))
    alerts = AlertService(
        AlertsConfig(),
        registry,
        tmp_path / "alerts.db",
        clock=clock,
        results=make_source(AssessmentConfig(), [sink_config]),
    )
    dashboard = Dashboard(
        DashboardConfig(stream_interval=timedelta(milliseconds=200)),
        registry,
        SQLiteQuery(sink_config.path),
        alerts.snapshot,
        clock=clock,
    )
    http = HTTPService("127.0.0.1", 0, {**alerts.routes(), **dashboard.routes()}, token=None)
    http.start()
    try:
        yield Served(f"http://127.0.0.1:{http.port}")
    finally:
        dashboard.close()
        http.stop()
        alerts.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    """Debian's Chromium with a fresh profile; any page error or console error fails the test."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=list(CHROMIUM_ARGS),
        viewport={"width": 1440, "height": 1000},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        accept_downloads=True,
    )
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    context.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        yield context
    finally:
        context.close()
    assert errors == [], f"the page reported errors: {errors}"


def show_november(page: Page) -> None:
    page.select_option("#as-kind", "month")
    page.fill("#as-month", "2026-11")
    page.click("#as-show")


def shown_sections(page: Page) -> dict[str, list[str]]:
    rows: list[list[str]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('#as-sections tbody tr')).map((row) =>
            [row.getAttribute('data-station'), ...Array.from(row.cells).map((c) => c.textContent.trim())])"""
    )
    return {row[0]: row[1:] for row in rows}


def test_the_assessment_view_in_chinese_then_english(served: Served, browser: BrowserContext) -> None:
    """November's bureau table as the API computes it, in Chinese; one click and it is English."""
    expected = served.api("/api/v1/assessment?period=2026-11")
    page = browser.new_page()
    page.goto(served.base + "/#assessment")
    expect(page.locator("#view-assessment")).to_be_visible()
    expect(page.locator("#view-live")).to_be_hidden()
    expect(page.locator("#tab-assessment")).to_have_text("水质评价")
    show_november(page)
    expect(page.locator("#as-heading")).to_have_text("2026年11月地表水环境质量月报", timeout=DEADLINE_MS)
    expect(page.locator("#as-sections tbody tr")).to_have_count(12)
    headers = page.locator("#as-sections thead th").all_text_contents()
    assert headers == ["断面", "河流", "区县", "目标", "本月", "上月", "去年同期",
                       "主要污染指标（超标倍数）", "是否达标", "水质状况"]  # fmt: skip
    shown = shown_sections(page)
    for section in expected["sections"]:
        row = shown[section["station_id"]]
        assert row[4] == (section["class"] or "不可评价"), section["station_id"]
        assert row[8] == {True: "✓ 是", False: "✗ 否", None: "—"}[section["meets_target"]]
    assert shown["s03"][7] == "总磷(1.00)、氨氮(0.30)、高锰酸盐指数(0.17)"
    assert shown["s08"][4] == "不可评价"
    assert (
        page.locator('#as-sections tr[data-station="s08"] .badge.na').get_attribute("title")
        == "缺少必评指标：总磷"
    )
    figures = page.locator("#as-summary .figure-value").all_text_contents()
    assert figures == ["12", "10", "70.0%", "20.0%", "50.0%", "中度污染"]
    ranking = page.locator(
        '#as-regions table[data-group="district"] tbody tr td:first-child'
    ).all_text_contents()
    assert ranking == ["江北区", "万州区", "渝中区"]  # ranks 1, 2, 3
    assert "从数据库补读" in page.locator("#as-state").inner_text()
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(SCREENSHOT, ARTIFACTS / "assessment-view.png")

    page.click("#lang")
    expect(page.locator("#tab-assessment")).to_have_text("Assessment")
    expect(page.locator("#as-heading")).to_have_text("Surface water quality, 2026-11")
    assert page.locator("#as-sections thead th").nth(4).inner_text() == "This month"
    assert shown_sections(page)["s08"][4] == "Not assessable"
    assert page.locator("html").get_attribute("lang") == "en"
    page.goto(served.base + "/")  # remembered, and the live view is the default one
    expect(page.locator("#tab-live")).to_have_text("Live")
    expect(page.locator("#map-title")).to_have_text("Monitoring points")
    page.goto(served.base + "/?lang=zh")
    expect(page.locator("#map-title")).to_have_text("监测点位")


def test_export_hands_over_the_printed_report(served: Served, browser: BrowserContext) -> None:
    """The Excel button downloads the month's XLSX as the API renders it."""
    page = browser.new_page()
    page.goto(served.base + "/#assessment")
    show_november(page)
    expect(page.locator("#as-sections tbody tr")).to_have_count(12, timeout=DEADLINE_MS)
    with page.expect_download() as download:
        page.click('[data-export="xlsx"]')
    assert download.value.suggested_filename == "ecowatch-2026-11.xlsx"
    assert Path(download.value.path()).read_bytes()[:2] == b"PK"
