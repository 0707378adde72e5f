"""The `http` section: where the daemon listens, its API token, and the limits every client meets.

The defaults suit a daemon reachable from a network: a client gets `header_timeout` from its
connection to the end of its headers and `body_timeout` for a body of at most `max_body_bytes`; a
write that makes no progress for `send_timeout` ends the connection (a dashboard stream whose
reader stopped reading included); at most `max_connections` are open at once, each one thread.

`allowed_hosts` defends against DNS rebinding: a web page on a name the attacker controls, whose
DNS answer later points at this daemon, sends that name in `Host`. A `Host` that is an IP address
can never carry it, so addresses are always accepted (probes, Prometheus and anyone using the IP
keep working), and so are `localhost`, the machine's host name and the name in `host`. List every
other name that clients use to reach the daemon: the compose or Kubernetes service name, a
reverse proxy's upstream name, the name in the dashboard's URL (`*.example.org` matches
subdomains). `["*"]` turns the check off.

An empty `token` is refused: it would look set and protect nothing. Leave the key out to run
without a token (loopback only), or give it a secret from the environment.

Example:
    http:
      host: 0.0.0.0
      port: 8080
      token: "${ECOWATCH_HTTP_TOKEN}"
      allowed_hosts: [localhost, ecowatch, ecowatch.example.org]
      max_connections: 64
      header_timeout: PT10S
      body_timeout: PT10S
      send_timeout: PT30S
      max_header_bytes: 65536
      max_body_bytes: 65536
      max_query_params: 20
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from datetime import timedelta
from enum import Enum
from typing import Final

from pydantic import Field, SecretStr, field_validator

from config.types import StrictModel

# A host name as it may appear in `Host` (letters, digits, `-`, `_` as in container names, dots).
_NAME: Final = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_ALLOWED: Final = re.compile(rf"\*|(?:\*\.)?{_NAME.pattern}")
# `Host: name[:port]` or `Host: [IPv6][:port]` (RFC 9110 §7.2; userinfo is not allowed there).
_HOST_HEADER: Final = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::[0-9]{0,5})?")


class HTTPConfig(StrictModel):
    host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz and the API.")
    port: int = Field(8080, ge=0, lt=65536, description="0 picks a free port (tests).")
    token: SecretStr | None = Field(
        None,
        description="Bearer token the API and the dashboard's data require; /metrics, /healthz, /readyz "
        "and the dashboard page itself stay open. Set it, from a secret (`${ECOWATCH_HTTP_TOKEN}`), "
        "whenever the port is reachable by others. Empty is an error.",
    )
    allowed_hosts: tuple[str, ...] = Field(
        ("localhost",),
        description="Host names accepted in the `Host` header (against DNS rebinding); IP addresses, "
        "`localhost`, this machine's host name and `host` always are. `*.example.org` matches "
        "subdomains; `*` accepts any. Other names are answered 421.",
    )
    max_connections: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Open connections at most, each one thread; more are answered 503 at once. Keep "
        "it well above dashboard.max_streams: each open dashboard holds one.",
    )
    header_timeout: timedelta = Field(
        timedelta(seconds=10),
        gt=timedelta(0),
        le=timedelta(minutes=5),
        description="From accepting a connection to the end of its request headers; then it is closed "
        "(a client trickling its headers cannot hold a thread).",
    )
    body_timeout: timedelta = Field(
        timedelta(seconds=10),
        gt=timedelta(0),
        le=timedelta(minutes=5),
        description="For the whole request body, once the headers are in; then 408 and close.",
    )
    send_timeout: timedelta = Field(
        timedelta(seconds=30),
        gt=timedelta(0),
        le=timedelta(minutes=10),
        description="A write to a client that makes no progress for this long ends the connection: a "
        "response, or an event of a dashboard stream whose reader stopped reading.",
    )
    max_header_bytes: int = Field(
        64 * 1024,
        ge=4096,
        le=2**20,
        description="Request line and headers together at most; more is answered 431.",
    )
    max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=16 * 2**20,
        description="Request body at most (operator API bodies are small JSON documents); a larger "
        "Content-Length is answered 413 before any of the body is read.",
    )
    max_query_params: int = Field(
        20, ge=1, le=1000, description="Query parameters of one request at most; more are answered 400."
    )

    @field_validator("token")
    @classmethod
    def _token_not_empty(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("must not be empty: leave the key out for no token, or set a secret")
        return token

    @field_validator("allowed_hosts")
    @classmethod
    def _host_patterns(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        normalized = tuple(_normalize(h) for h in hosts)
        bad = [h for h, n in zip(hosts, normalized, strict=True) if not _ALLOWED.fullmatch(n)]
        if bad:
            raise ValueError(f"not host names (no scheme, port or path): {bad}")
        return normalized


class HostVerdict(Enum):
    ALLOWED = "allowed"
    MALFORMED = "malformed"  # missing where required, repeated, or not a host: 400
    NOT_ALLOWED = "not_allowed"  # a well-formed name we do not serve: 421


class HostAllowList:
    """Judges `Host` headers against `allowed_hosts` plus the names that are always safe."""

    def __init__(self, patterns: Iterable[str]) -> None:
        names = {_normalize(p) for p in patterns}
        self._any = "*" in names
        self._exact = {n for n in names if not n.startswith("*")} | {"localhost"}
        self._suffixes = tuple(n[1:] for n in names if n.startswith("*."))

    def check(self, values: list[str], http_1_1: bool) -> HostVerdict:
        """`values`: every `Host` header of the request (RFC 9112 §3.2: exactly one in HTTP/1.1)."""
        if not values:
            # Browsers always send Host, so its absence is no rebinding; HTTP/1.1 requires it.
            return HostVerdict.MALFORMED if http_1_1 else HostVerdict.ALLOWED
        if len(values) > 1:
            return HostVerdict.MALFORMED
        match = _HOST_HEADER.fullmatch(values[0].strip().lower())
        if match is None:
            return HostVerdict.MALFORMED
        if match["v6"] is not None:
            return HostVerdict.ALLOWED if _is_address(match["v6"]) else HostVerdict.MALFORMED
        name = match["name"].removesuffix(".")
        if self._any or _is_address(name) or name in self._exact or name.endswith(self._suffixes):
            return HostVerdict.ALLOWED
        return HostVerdict.NOT_ALLOWED


def _normalize(host: str) -> str:
    return host.strip().lower().removesuffix(".")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
