"""The operator dashboard, served by the daemon's HTTP server: one page, five files, five endpoints.

    GET /                   the page (static/index.html)
    GET /static/i18n.js     its texts in Chinese and English, then app.js (the live view) and
                            assessment.js (the assessment view); GET /static/style.css its styles
                            (a fixed whitelist, `assets`)
    GET /api/v1/registry    stations with coordinates, the parameter catalogue (`charts`)
    GET /api/v1/readings    one station's series of one parameter with its class limits (`charts`)
    GET /api/v1/network     the river network's geometry: rivers, stations' and points' chainages
                            and interpolated positions (`geometry`)
    GET /api/v1/stream      live snapshots as server-sent events (`stream`)

Two views. Live (#live, the default): a schematic map of the stations (an SVG scatter of
longitude and latitude, rivers drawn along the network, or through their stations without one)
coloured by current class, with intakes (取水口) and boundary sections as their own symbols; the
pollution incidents (alerts.incidents, in the live snapshot): the selected one's path, origin
reach and arrival forecast on the map (ETAs in Asia/Shanghai time, ± tolerance) and a panel of
the open and recently closed ones with the selected one's timeline; a station
table, the compliance rates per district and basin, the active alerts with Acknowledge and
Silence actions (POSTs to the alert API), and a trend chart of one station and parameter with the
class limits drawn. Assessment (#assessment): a period picker (day, month, quarter, year, year to
date) and a scope (district, basin, river), then what GET /api/v1/assessment (alerts.api) answers:
the overall figures, the section table as a bureau's monthly bulletin lays it out, and the
regional shares, grades and ranking; Export downloads the printed report (HTML, XLSX, CSV).
Every text is Chinese by default and English on request (`?lang=en`, or the button; the choice
is kept in localStorage). Hand-written HTML, CSS and JavaScript, no build step, nothing fetched
from elsewhere.

GB 3838 class colours (the convention of Chinese water-quality maps, tuned for contrast):
I #1e50c8 deep blue · II #35a3e8 light blue · III #2ea44f green · IV #f2c200 yellow ·
V #f08400 orange · 劣V #d62839 red · no data #9aa3ad grey. A point that misses its target
class gets a dark dashed ring.

Security. The page and its files hold no data and are public (`PUBLIC_PATHS`); every endpoint
that returns data sits behind the daemon's API token. When a request answers 401, the page asks
for the token once, keeps it in sessionStorage and sends it as `Authorization: Bearer`.
EventSource cannot send that header, so the page reads the stream with `fetch()` and parses the
event-stream body itself (the same wire format; reconnecting with backoff): the token never
appears in a URL or a log. Every answer of the page's files carries a strict
Content-Security-Policy (no inline script or style, this origin only, no framing) and
`X-Frame-Options: DENY`, and the script builds the DOM with `textContent` and attributes only.

Example:
    dashboard:
      enabled: true
      stream_interval: PT2S
      max_streams: 8
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from alerts.api import AlertSnapshot
from config.parameters import Parameter, default_catalogue
from config.registry import Registry
from config.standards import Standard, default_standard
from ingest.app.dashboard.assets import ASSETS, load_assets
from ingest.app.dashboard.charts import Charts
from ingest.app.dashboard.config import DashboardConfig
from ingest.app.dashboard.geometry import NetworkGeometry
from ingest.app.dashboard.stream import LiveFeed, StreamHub
from ingest.app.query import ReadingsQuery
from ingest.routes import Handler, RawBody, Request

__all__ = ["PUBLIC_PATHS", "Dashboard", "DashboardConfig"]

# The page and its files: served without the API token (they hold no data).
PUBLIC_PATHS: Final = frozenset(ASSETS)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Dashboard:
    """The page, its files and its endpoints.

    `alert_state` is the one way the dashboard reads the alert engine (the alert service's
    `snapshot`): it feeds the live stream. None runs the dashboard without the alert engine.
    """

    def __init__(
        self,
        config: DashboardConfig,
        registry: Registry,
        query: ReadingsQuery,
        alert_state: Callable[[], AlertSnapshot] | None = None,
        *,
        standard: Standard | None = None,
        catalogue: Mapping[str, Parameter] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self._query = query
        self._assets = load_assets()
        self.charts = Charts(
            config,
            registry,
            query,
            standard=standard or default_standard(),
            catalogue=catalogue or default_catalogue(),
            clock=clock,
        )
        self.geometry = NetworkGeometry(registry)
        interval = config.stream_interval.total_seconds()
        self.feed = LiveFeed(registry, alert_state, clock, max_age=interval / 2)
        self.streams = StreamHub(self.feed, interval, config.max_streams)

    def routes(self) -> dict[tuple[str, str], Handler]:
        routes: dict[tuple[str, str], Handler] = {
            ("GET", path): self._asset_handler(body) for path, body in self._assets.items()
        }
        routes[("GET", "/api/v1/registry")] = self.charts.registry
        routes[("GET", "/api/v1/readings")] = self.charts.readings
        routes[("GET", "/api/v1/network")] = self.geometry.network
        routes[("GET", "/api/v1/stream")] = self.streams.open
        return routes

    def close(self) -> None:
        """End the open live streams and release the store's connections (before the HTTP server stops)."""
        self.streams.close()
        self._query.close()

    @staticmethod
    def _asset_handler(body: RawBody) -> Handler:
        def serve(_request: Request) -> tuple[int, RawBody]:
            return 200, body

        return serve
