"""Pollution incidents on the dashboard: the network geometry endpoint, the live snapshot, the page.

The demo registry (32 points and its illustrative river network) behind a served stack; hourly
readings from a fixed T0 (nothing compares them with the wall clock) carry two spills of NH3-N:
one on the Jialing entering between 金子 and 北温泉, seen at 北温泉 and, one travel time later,
at 大溪沟 (an incident opened and confirmed, forecast down the Yangtze past the 鱼嘴 intake), and
an earlier one at 綦江 五岔 alone (a second, unrelated open incident). The page must show both in
the incident panel, draw the newest open one's path, origin reach and ETAs on the map, switch on
a click, and speak English on request. The screenshot is saved to /tmp/ecowatch-incident.png
(and the map alone to /tmp/ecowatch-incident-map.png).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, Playwright, expect, sync_playwright

from config.registry import Registry
from ingest.app.dashboard import DashboardConfig
from ingest.app.settings import DEMO_REGISTRY
from ingest.model import Reading
from tests.dashboard.support import CLEAN, T0, TOKEN, Stack, chromium, reading, serve_stack
from tests.dashboard.test_dashboard_stream import EventReader

SHOT: Final = Path("/tmp/ecowatch-incident.png")
MAP_SHOT: Final = Path("/tmp/ecowatch-incident-map.png")
SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
ENTERED: Final = "cq-jl-beiwenquan"  # the first section below the Jialing spill
CONFIRMED: Final = "cq-jl-daxigou"  # the next one, where it is confirmed
ALONE: Final = "cq-qj-wucha"  # the other incident: one station, earlier
SPILL_AT: Final = T0 + timedelta(hours=10)  # when the Jialing plume reaches 北温泉
ALONE_AT: Final = T0 + timedelta(hours=4)
PEAKS: Final = {ENTERED: 3.2, CONFIRMED: 2.6, ALONE: 1.9}
PLUME: Final = timedelta(hours=8)  # how long each plume takes to pass a section
FIRST_HOUR: Final = -12  # clean reports before the spills, for the origin's clean bounds
DEADLINE_MS: Final = 20_000


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(DEMO_REGISTRY)


def arrivals(registry: Registry) -> dict[str, datetime]:
    """When each plume reaches each section it reaches: 大溪沟 one modelled travel time after 北温泉."""
    assert registry.network is not None
    travel = registry.network.travel_time(ENTERED, CONFIRMED)
    assert travel is not None
    return {ENTERED: SPILL_AT, CONFIRMED: SPILL_AT + timedelta(seconds=travel), ALONE: ALONE_AT}


def hourly_batches(registry: Registry) -> Iterator[tuple[datetime, list[Reading]]]:
    """Every water-quality station's hourly report (class II on rivers, TP 0.02 on lakes), the
    plumes' NH3-N where they are, until two hours after the confirmation."""
    arrive = arrivals(registry)
    last = arrive[CONFIRMED] + timedelta(hours=2)
    hour = FIRST_HOUR
    while (at := T0 + timedelta(hours=hour)) <= last:
        batch: list[Reading] = []
        for station in registry.values():
            if "water" not in station.kinds:
                continue
            values = dict(CLEAN)
            if station.water_body != "river":
                values["tp"] = 0.02  # under the lake column's class III limit (0.05)
            start = arrive.get(station.id)
            if start is not None and start <= at < start + PLUME:
                values["nh3n"] = PEAKS[station.id]
            batch += [reading(station.id, code, value, at) for code, value in values.items()]
        yield at, batch
        hour += 1


def feed_spills(stack: Stack) -> None:
    for at, batch in hourly_batches(stack.registry):
        stack.clock.now = at
        stack.feed(batch)


def open_incidents(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the Jialing incident, the 綦江 one), as GET /api/v1/incidents lists them."""
    listed = stack.get_json("/api/v1/incidents")["incidents"]
    by_first = {i["stations"][0]["station_id"]: i for i in listed}
    assert set(by_first) == {ENTERED, ALONE}, listed
    return by_first[ENTERED], by_first[ALONE]


def local(value: str) -> str:
    """An API time as the page shows it in Chinese: MM/DD HH:mm in Asia/Shanghai."""
    return datetime.fromisoformat(value).astimezone(SHANGHAI).strftime("%m/%d %H:%M")


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: Registry) -> Iterator[Stack]:
    config = DashboardConfig(stream_interval=timedelta(milliseconds=200))
    with serve_stack(tmp_path, monkeypatch, registry=registry, config=config) as stack:
        yield stack


# --- API ------------------------------------------------------------------------------------------
def test_network_geometry_places_points_along_their_rivers(served: Stack, registry: Registry) -> None:
    """GET /api/v1/network (behind the token) gives each river its line by chainage, ending at its
    mouth on the receiving river, and places points by interpolating between the stations around."""
    assert served.request("GET", "/api/v1/network", token=None).status == 401
    body = served.get_json("/api/v1/network")
    assert body["enabled"] is True
    rivers = {r["name"]: r for r in body["rivers"]}
    jialing = rivers["嘉陵江"]
    assert jialing["joins"] == {"river": "长江", "at_km": 250.0}
    assert [s["id"] for s in jialing["stations"]] == ["cq-jl-jinzi", ENTERED, CONFIRMED]
    kms = [v[0] for v in jialing["line"]]
    assert kms == sorted(kms)
    assert kms[-1] == jialing["length_km"]  # the mouth
    # The mouth lies on the Yangtze's line between 丰收坝 (km 225) and 寸滩 (km 257), at km 250.
    fengshouba, cuntan = registry["cq-cj-fengshouba"], registry["cq-cj-cuntan"]
    share = (250 - 225) / (257 - 225)
    mouth = jialing["line"][-1][1:]
    assert mouth == pytest.approx(
        [
            fengshouba.lat + share * (cuntan.lat - fengshouba.lat),
            fengshouba.lon + share * (cuntan.lon - fengshouba.lon),
        ],
        abs=1e-5,
    )
    # The 主城 intake at km 130, between 北温泉 (95) and 大溪沟 (150).
    points = {p["id"]: p for p in body["points"]}
    intake = points["intake-jl-zhucheng"]
    upper, lower = registry[ENTERED], registry[CONFIRMED]
    share = (130 - 95) / (150 - 95)
    assert (intake["kind"], intake["river"], intake["chainage_km"]) == ("intake", "嘉陵江", 130.0)
    assert [intake["lat"], intake["lon"]] == pytest.approx(
        [upper.lat + share * (lower.lat - upper.lat), upper.lon + share * (lower.lon - upper.lon)], abs=1e-5
    )
    assert all(p["lat"] is not None and p["lon"] is not None for p in body["points"])
    assert "receivers" not in intake  # the map needs no receiver names


def test_network_geometry_without_a_network_is_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry without `network:` answers enabled false and nothing to draw."""
    with serve_stack(tmp_path, monkeypatch) as stack:
        body = stack.get_json("/api/v1/network")
    assert body == {"enabled": False, "note": None, "rivers": [], "points": []}


def test_stream_carries_the_incidents_as_the_api_lists_them(served: Stack) -> None:
    """The live snapshot's `incidents` is GET /api/v1/incidents?status=all: none before the spills,
    both incidents (the Jialing one confirmed, with its origin, forecast and timeline) after."""
    reader = EventReader(served.port)
    try:
        _, first = reader.next_event()
        assert first["incidents"] == []
        feed_spills(served)
        expected = served.get_json("/api/v1/incidents?status=all")["incidents"]
        snapshot = first
        for _ in range(50):  # one update per stream interval that saw a change; the last is whole
            if snapshot["incidents"] == expected:
                break
            _, snapshot = reader.next_event()
    finally:
        reader.close()
    assert snapshot["incidents"] == expected
    jialing, alone = open_incidents(served)
    assert jialing["status"] == "confirmed"
    assert [s["station_id"] for s in jialing["stations"]] == [ENTERED, CONFIRMED]
    assert jialing["origin"]["downstream"] == ENTERED
    assert "cq-jl-jinzi" in [b["station_id"] for b in jialing["origin"]["upstream"]]
    assert [f["point_id"] for f in jialing["forecast"]][:2] == ["cq-cj-cuntan", "intake-cj-yuzui"]
    assert [e["kind"] for e in jialing["timeline"]][:2] == ["opened", "confirmed"]
    assert alone["status"] == "open"
    assert alone["single_station"] is True


# --- the page in Chromium -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


def sign_in(page: Page, port: int) -> None:
    page.goto(f"http://127.0.0.1:{port}/")
    expect(page.locator("#token-dialog")).to_be_visible()
    page.fill("#token-input", TOKEN)
    page.click("#token-dialog button[type=submit]")
    expect(page.locator("#live")).to_have_text("实时", timeout=DEADLINE_MS)


def station_x(page: Page, station_id: str) -> float:
    """The x of a station's point in the map's 800 x 500 frame."""
    transform = page.locator(f'#map g.station[data-station="{station_id}"]').get_attribute("transform")
    assert transform is not None
    match = re.match(r"translate\(([-\d.]+),", transform)
    assert match is not None, transform
    return float(match.group(1))


@pytest.mark.integration
def test_incident_on_the_map_and_in_the_panel(served: Stack, playwright: Playwright, tmp_path: Path) -> None:
    """The panel lists both open incidents (newest selected) with item, status, first section,
    origin reach and the sections reached; the map draws the selected one's path, origin reach,
    intakes and an ETA at each forecast point, the other muted, fitted to the incident until asked
    for the whole map; a click switches; English works."""
    feed_spills(served)
    jialing, alone = open_incidents(served)
    with chromium(playwright, tmp_path / "profile", viewport=(1440, 1400)) as browser:
        page = browser.new_page()
        sign_in(page, served.port)

        rows = page.locator("#incidents tbody tr")
        expect(rows).to_have_count(2, timeout=DEADLINE_MS)
        expect(page.locator("#incident-count")).to_have_text("2")
        selected = page.locator("#incidents tbody tr.selected")
        expect(selected).to_have_attribute("data-incident", jialing["id"])  # the newest open one
        for text in (
            "氨氮",
            "已确认",
            "嘉陵江 北温泉",
            "嘉陵江：金子",
            "至 北温泉 之间",
            "大溪沟",
            "峰值 3.20 mg/L",
        ):
            expect(selected).to_contain_text(text)
        reached = selected.locator(".reached li")
        expect(reached).to_have_count(2)
        expect(reached.nth(0)).to_contain_text(local(jialing["stations"][0]["first_exceeded_at"]))
        other = page.locator(f'#incidents tbody tr[data-incident="{alone["id"]}"]')
        expect(other).to_contain_text("待确认")
        expect(other).to_contain_text("綦江：河源 至 五岔 之间")

        # The map: the selected incident's path, origin reach and forecast, the other one muted.
        chosen = page.locator(f'#map g.incident.selected[data-incident="{jialing["id"]}"]')
        expect(chosen.locator("path.incident-path")).to_have_count(1)
        expect(chosen.locator("path.incident-origin")).to_have_count(1)
        expect(chosen.locator("path.incident-forecast")).to_have_count(1)
        expect(page.locator("#map .origin-label")).to_have_text("疑似源头")
        expect(page.locator("#map g.incident-hit")).to_have_count(2)
        expect(page.locator(f'#map g.incident-hit[data-station="{CONFIRMED}"] .order-number')).to_have_text(
            "2"
        )
        expect(page.locator(f'#map g.incident.other[data-incident="{alone["id"]}"]')).to_have_count(1)
        expect(page.locator("#map g.netpoint.intake")).to_have_count(6)
        forecast = jialing["forecast"]
        etas = page.locator("#map g.eta")
        expect(etas).to_have_count(len(forecast))
        first = forecast[0]
        eta_label = page.locator(f'#map g.eta[data-point="{first["point_id"]}"] .eta-label')
        expect(eta_label).to_have_text(
            re.compile(rf"^寸滩 {re.escape(local(first['eta']))} ±\d+(分钟|\.\d小时|小时)$")
        )
        intake = next(f for f in forecast if f["kind"] == "intake")
        expect(page.locator(f'#map g.eta.intake[data-point="{intake["point_id"]}"] title')).to_contain_text(
            local(intake["eta"])
        )
        expect(page.locator("#map-incident")).to_contain_text("北温泉 → 大溪沟")

        # The detail: origin, forecast table and timeline.
        detail = page.locator("#incident-detail")
        expect(detail).to_have_attribute("data-incident", jialing["id"])
        expect(page.locator("#incident-heading")).to_have_text("氨氮污染事件 · 已确认")
        expect(page.locator("#incident-forecast tbody tr")).to_have_count(len(forecast))
        expect(page.locator(f'#incident-forecast tr[data-point="{intake["point_id"]}"]')).to_contain_text(
            "取水口"
        )
        events = page.locator("#incident-timeline li")
        expect(events).to_have_count(2)  # opened, confirmed (forecast updates are the table)
        expect(events.nth(0)).to_contain_text("事件发现：北温泉 超标")
        expect(events.nth(1)).to_contain_text("在下游断面 大溪沟 确认")
        expect(events.nth(1).locator("time")).to_have_text(local(jialing["timeline"][1]["time"]))

        page.screenshot(path=str(SHOT), full_page=True)
        page.locator(".map-card").screenshot(path=str(MAP_SHOT))

        # The map fits the incident (the Three Gorges are out of frame); the button shows it all.
        zoom = page.locator("#map-zoom")
        expect(zoom).to_have_text("显示全图")
        assert station_x(page, "cq-cj-peishi") > 800
        zoom.click()
        expect(zoom).to_have_text("聚焦污染事件")
        assert station_x(page, "cq-cj-peishi") < 800
        zoom.click()
        expect(zoom).to_have_text("显示全图")

        # A click on the other incident moves the map to it; and back.
        other.click()
        expect(page.locator("#incidents tbody tr.selected")).to_have_attribute("data-incident", alone["id"])
        expect(page.locator(f'#map g.incident.selected[data-incident="{alone["id"]}"]')).to_have_count(1)
        expect(page.locator(f'#map g.incident.other[data-incident="{jialing["id"]}"]')).to_have_count(1)
        expect(page.locator("#map g.incident-hit")).to_have_count(1)
        expect(page.locator("#incident-heading")).to_have_text("氨氮污染事件 · 待确认")
        page.locator(f'#map g.incident.other[data-incident="{jialing["id"]}"]').dispatch_event("click")
        expect(page.locator("#incidents tbody tr.selected")).to_have_attribute("data-incident", jialing["id"])

        # English on request, the same incident still selected.
        page.click("#lang")
        expect(page.locator("#incident-heading")).to_have_text("Ammonia nitrogen incident · confirmed")
        expect(page.locator("#incidents thead")).to_contain_text("Likely origin reach")
        expect(events.nth(1)).to_contain_text("confirmed downstream at 大溪沟")
        expect(page.locator("#map .origin-label")).to_have_text("likely origin")
    assert SHOT.stat().st_size > 0
