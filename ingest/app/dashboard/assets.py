"""The page and its static files: a fixed whitelist, read once, served with strict security headers.

Only the files named in `ASSETS` are served, each at its own exact route, so no part of a request
path ever reaches the file system. The Content-Security-Policy allows scripts, styles and
connections to this origin only, no inline script or style and no framing; the page builds its
DOM with `textContent` and attributes, never with HTML strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from ingest.routes import RawBody

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
# route -> (file in static/, content type)
ASSETS: Final[Mapping[str, tuple[str, str]]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/i18n.js": ("i18n.js", "text/javascript; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/assessment.js": ("assessment.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def load_assets(directory: Path = STATIC_DIR) -> dict[str, RawBody]:
    """Every whitelisted file as a ready answer, by route; a missing file fails at start-up."""
    return {
        route: RawBody(content_type, (directory / name).read_bytes(), SECURITY_HEADERS)
        for route, (name, content_type) in ASSETS.items()
    }
