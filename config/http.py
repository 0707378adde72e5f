"""HTTP every client of ours shares: the connection pool, header look-up and `Retry-After`.

Sinks (ingest) and notifiers (alerts) both turn HTTP answers into retry verdicts; the parts of
that which are plain HTTP live here so both read a server's `Retry-After` the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Final

import urllib3

from config.types import TLSConfig

# A Retry-After past this is a misconfigured server; the caller's backoff cap applies instead.
MAX_RETRY_AFTER_SECONDS: Final = 3600.0


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3: delay-seconds or HTTP-date).

    `now` is the current epoch time in seconds, for the HTTP-date form. Clamped to
    [0, MAX_RETRY_AFTER_SECONDS]; None when absent or unreadable.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def make_pool(tls: TLSConfig | None = None) -> urllib3.PoolManager:
    """A connection pool that never retries or redirects by itself and verifies certificates."""
    tls = tls or TLSConfig()
    return urllib3.PoolManager(
        num_pools=2,
        retries=False,
        cert_reqs="CERT_NONE" if tls.insecure_skip_verify else "CERT_REQUIRED",
        ca_certs=str(tls.ca_file) if tls.ca_file else None,
        cert_file=str(tls.cert_file) if tls.cert_file else None,
        key_file=str(tls.key_file) if tls.key_file else None,
    )
