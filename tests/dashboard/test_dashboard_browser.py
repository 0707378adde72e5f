"""The dashboard in a real headless Chromium (Debian's, driven by Playwright), on the demo scenario.

A real Mosquitto, the daemon in-process with the alert service and the dashboard wired in, and
the simulator publishing the demo scenario, accelerated: two days of hourly history and the
scenario's first 45 s (before the spill) are backfilled at their past timestamps, the page is
opened and checked against the API, then the spill's minutes are published and the alert must
reach the open page over the live stream and be acknowledged with clicks. A second test signs in
with a token and shows that hostile station names stay text. The screenshot is saved to
`test-artifacts/dashboard.png`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright

from alerts.config import AlertsConfig
from alerts.service import AlertService
from config.registry import Registry
from ingest.app.daemon import Daemon
from ingest.app.dashboard import Dashboard, DashboardConfig
from ingest.app.query import make_query
from ingest.app.settings import DEMO_REGISTRY, load_settings
from ingest.delivery import SinkRunner
from ingest.sinks.base import SinkConfigBase
from simulators.load import write_registry
from simulators.publish import MqttOptions, MqttPublisher
from simulators.scenario import SCENARIO_DIR, Scenario, load_scenario
from simulators.simulator import SimMessage, Simulator
from tests.dashboard.support import HOSTILE_NAME, TOKEN, chromium, serve_stack
from tests.servers import MosquittoServer, http_request

pytestmark = pytest.mark.integration

ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "test-artifacts"
# The spill reaches 金子 at 1:00 into the demo scenario; before 0:45 every Jialing point is clean.
BEFORE_SPILL: Final = timedelta(seconds=45)
SCENARIO_RUN: Final = timedelta(seconds=150)
SPILL_STATION: Final = "cq-jl-jinzi"
CLASS_KEY: Final = {"I": "c1", "II": "c2", "III": "c3", "IV": "c4", "V": "c5", "劣V": "c6", None: "c0"}
DEADLINE_S: Final = 30.0


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    """Debian's Chromium with a fresh profile, nothing downloaded, no traffic but to loopback."""
    with chromium(playwright, tmp_path / "chromium-profile") as context:
        yield context


@dataclass
class Demo:
    daemon: Daemon
    alerts: AlertService
    runner: SinkRunner
    publisher: MqttPublisher

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.daemon.http.port}"

    def api(self, path: str, body: Any = None) -> Any:
        data = None if body is None else orjson.dumps(body)
        status, answer = http_request(
            "GET" if data is None else "POST",
            self.base + path,
            body=data,
            headers={"Content-Type": "application/json"} if data else None,
        )
        assert status == 200, answer
        return orjson.loads(answer)

    def publish(self, messages: list[SimMessage]) -> None:
        before = self.daemon.stats()["logs"]["raw_logged"]
        for message in messages:
            self.publisher.publish(message.topic, message.payload)
        assert self.publisher.flush(DEADLINE_S)
        self.settle(before + len(messages))

    def settle(self, logged: int) -> None:
        """Wait until the daemon logged `logged` messages and every consumer caught up."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            stats = self.daemon.stats()
            logs = stats["logs"]
            if (
                logs["raw_logged"] >= logged
                and logs["raw_processed"] == logs["raw_logged"]
                and all(s["pending"] == 0 for s in stats["sinks"].values())
                and self.runner.reader.lag() == 0
                and self.daemon.readings_wal.durable_offset == logs["readings_logged"]
            ):
                return
            assert time.monotonic() < deadline, f"the daemon did not settle: {stats}"
            time.sleep(0.05)


@pytest.fixture
def demo(tmp_path: Path, mosquitto: MosquittoServer) -> Iterator[Demo]:
    simulator = Simulator(Registry.load(DEMO_REGISTRY), load_scenario(SCENARIO_DIR / "demo.yaml"), seed=2026)
    registry_file = tmp_path / "stations.yaml"
    write_registry(simulator.registry_stations(), registry_file, note="dashboard test")
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        registry=registry_file,
        mqtt={"port": mosquitto.port, "client_id": "ecowatch-dashboard-test"},
        http={"port": 0},
    )
    daemon = Daemon(settings)
    # The alert service and the dashboard wired as the daemon wires them (see the lead's report):
    # the engine consumes the readings log like a sink; its routes and the dashboard's are served.
    alerts = AlertService(
        AlertsConfig.model_validate({"scheduler": {"tick_interval": "PT1S"}}),
        daemon.registry,
        settings.data_dir / "dashboard-test-alerts.db",
    )
    runner = SinkRunner(
        alerts,
        SinkConfigBase(name="dashboard-test-alerts", flush_interval=timedelta(milliseconds=50)),
        daemon.readings_wal.reader("sink.dashboard-test-alerts", "beginning"),
        daemon.deadletters,
    )
    dashboard = Dashboard(
        DashboardConfig(stream_interval=timedelta(milliseconds=500)),
        daemon.registry,
        make_query(settings.effective_sinks()),
        alerts.snapshot,
    )
    daemon.http.add_routes(alerts.routes())
    daemon.http.add_routes(dashboard.routes())
    runner.start()
    daemon.start()
    alerts.start()
    publisher = MqttPublisher(MqttOptions(port=mosquitto.port, client_id="dashboard-test-sim"))
    try:
        assert daemon.source.wait_connected(10)
        publisher.connect()
        yield Demo(daemon, alerts, runner, publisher)
    finally:
        publisher.close(timeout=5)
        dashboard.close()
        alerts.stop()
        daemon.stop()
        runner.stop(timeout=5)
        alerts.close()


def scenario_messages(now: datetime) -> tuple[list[SimMessage], list[SimMessage]]:
    """(two days of hourly history + the scenario before the spill, the spill's minutes up to now)."""
    stations = Registry.load(DEMO_REGISTRY)
    start = now - SCENARIO_RUN
    quiet = Simulator(stations, Scenario.quiet(), seed=2026, report_interval=timedelta(hours=1))
    history = list(quiet.iter_messages(start - timedelta(days=2), start - timedelta(minutes=1)))
    story = Simulator(stations, load_scenario(SCENARIO_DIR / "demo.yaml"), seed=2026)
    messages = list(story.iter_messages(start, now))
    before = [m for m in messages if m.sim_time < start + BEFORE_SPILL]
    after = [m for m in messages if m.sim_time >= start + BEFORE_SPILL]
    return history + before, after


def page_classes(page: Page) -> dict[str, tuple[str, str]]:
    """Per station: the class shown in the table and the colour class of its point on the map."""
    rows: list[list[str]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('#stations tbody tr')).map((row) => {
            const id = row.getAttribute('data-station');
            const point = document.querySelector(`#map g.station[data-station="${id}"]`);
            const colour = Array.from(point.classList).find((c) => /^c[0-6]$/.test(c));
            return [id, row.querySelector('.class-cell').textContent, colour];
        })"""
    )
    return {station_id: (shown, colour) for station_id, shown, colour in rows}


def api_classes(demo: Demo) -> dict[str, tuple[str, str]]:
    return {
        s["id"]: (s["class"] or "—", CLASS_KEY[s["class"]]) for s in demo.api("/api/v1/stations")["stations"]
    }


def wait_for_same_classes(page: Page, demo: Demo) -> dict[str, tuple[str, str]]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        expected, shown = api_classes(demo), page_classes(page)
        if shown == expected:
            return shown
        assert time.monotonic() < deadline, f"page {shown} != api {expected}"
        time.sleep(0.2)


def spill_alert(demo: Demo) -> dict[str, Any] | None:
    alerts = demo.api(f"/api/v1/alerts?station_id={SPILL_STATION}&rule=water_quality")["alerts"]
    return alerts[0] if alerts else None


def test_demo_scenario_in_chromium(demo: Demo, browser: BrowserContext) -> None:
    """The page shows the API's classes, the spill's alert arrives live, and a click acknowledges it."""
    before, after = scenario_messages(datetime.now(UTC).replace(microsecond=0))
    demo.publish(before)
    assert spill_alert(demo) is None

    page = browser.new_page()
    page.goto(demo.base + "/?lang=en")  # the English texts asserted below (Chinese by default)
    expect(page.locator("#live")).to_have_text("live", timeout=DEADLINE_S * 1000)
    expect(page.locator("#stations tbody tr")).to_have_count(32)
    shown = wait_for_same_classes(page, demo)
    assert sum(1 for text, _ in shown.values() if text != "—") >= 25  # most points are classified

    demo.publish(after)
    alert = spill_alert(demo)
    assert alert is not None
    assert alert["state"] == "firing"
    row = page.locator(f'#alerts tbody tr[data-alert="{alert["alert_id"]}"]')
    expect(row).to_be_visible(timeout=DEADLINE_S * 1000)  # pushed over the open stream
    expect(row).to_contain_text("嘉陵江 金子")
    wait_for_same_classes(page, demo)
    jinzi = page.locator(f'#map g.station[data-station="{SPILL_STATION}"]')
    expect(jinzi).to_have_class(re.compile(r"\bmissed\b"))  # the dashed ring: misses its target

    row.get_by_role("button", name="Acknowledge").click()
    dialog = page.locator("#ack-dialog")
    expect(dialog).to_be_visible()
    page.fill("#ack-by", "值班员 李")
    page.fill("#ack-comment", "sampling team sent to 金子")
    page.click("#ack-submit")
    expect(dialog).to_be_hidden()
    acknowledged = demo.api(f"/api/v1/alerts?alert_id={alert['alert_id']}")["alerts"][0]["acknowledged"]
    assert acknowledged["by"] == "值班员 李"
    assert acknowledged["comment"] == "sampling team sent to 金子"
    expect(row).to_contain_text("acked by 值班员 李", timeout=DEADLINE_S * 1000)
    expect(row.get_by_role("button", name="Acknowledged")).to_be_disabled()

    page.locator(f'#stations tbody tr[data-station="{SPILL_STATION}"]').click()
    page.select_option("#chart-parameter", "nh3n")
    page.select_option("#chart-hours", "72")
    expect(page.locator("#chart path.series")).to_have_count(1)
    expect(page.locator("#chart .limit.target")).to_have_count(1)
    expect(page.locator("#chart-note")).to_contain_text("嘉陵江 金子")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def test_token_prompt_and_hostile_names(
    browser: BrowserContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a token the page asks once and then works; markup in station names shows as text."""
    with serve_stack(tmp_path, monkeypatch) as stack:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{stack.port}/?lang=en")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        page.fill("#token-input", "not-the-token")
        page.click("#token-dialog button[type=submit]")
        expect(page.locator("#token-error")).to_have_text("That token was refused.")
        page.fill("#token-input", TOKEN)
        page.click("#token-dialog button[type=submit]")
        expect(dialog).to_be_hidden()
        expect(page.locator("#live")).to_have_text("live")
        evil = page.locator('#stations tbody tr[data-station="st-evil"] .name')
        expect(evil).to_have_text(HOSTILE_NAME)
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator("#stations img, #map img, #alerts img, script:not([src])").count() == 0
        assert page.evaluate("() => sessionStorage.getItem('ecowatch.token')") == TOKEN
        # A second load asks no more: the token is kept for the tab.
        page.reload()
        expect(page.locator("#live")).to_have_text("live")
        expect(dialog).to_be_hidden()

        # Silence from the page: the form's duration, reason and author reach the alert API.
        now = stack.clock.now = datetime.now(UTC)
        row = page.locator('#alerts tbody tr[data-station="st-river"]', has_text="water_quality")
        row.get_by_role("button", name="Silence").click()
        page.select_option("#silence-duration", "4")
        page.fill("#silence-reason", "<b>dredging</b> upstream")
        page.fill("#silence-by", "值班员 张")
        page.click("#silence-submit")
        expect(page.locator("#silence-dialog")).to_be_hidden()
        (silence,) = stack.get_json("/api/v1/silences")["silences"]
        assert silence["matchers"] == {"rule": "water_quality", "station_id": "st-river"}
        assert (silence["by"], silence["reason"]) == ("值班员 张", "<b>dredging</b> upstream")
        ends_at = datetime.fromisoformat(silence["ends_at"])
        assert abs(ends_at - (now + timedelta(hours=4))) < timedelta(minutes=1)
        expect(row.get_by_role("button", name="Silence")).to_be_disabled()
