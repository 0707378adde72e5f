"""Who a peer is for the gateway's limits, and the connection slots each peer may hold.

A peer is its IP address, the port left out (every connection has its own): an IPv4 address, or
the /64 network of an IPv6 address, since one IPv6 host holds a whole /64 and could otherwise take
a slot from each of its 2^64 addresses (IPv4-mapped IPv6 addresses count as their IPv4 address).
Loggers behind one NAT router share a peer.

`ConnectionSlots` keeps the count of open connections in total and per peer. A connection past
`max_connections` or past `max_connections_per_peer` is refused; the first refusal of a peer (or of
the gateway when full) is logged and the rest only counted until a connection of that peer (any
connection, when full) closes, so a connection flood cannot flood the log.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Final, Literal

# One IPv6 host is handed a /64 (RFC 4291's interface identifier is the low 64 bits).
_IPV6_HOST_PREFIX: Final = 64

Refusal = Literal["max_connections", "max_connections_per_peer"]


def peer_label(peername: object) -> str:
    """`host:port` of a socket's `peername`, for logs."""
    if isinstance(peername, tuple) and len(peername) >= 2:  # (host, port) or IPv6 (host, port, flow, scope)
        return f"{peername[0]}:{peername[1]}"
    return str(peername)


def peer_key(peername: object) -> str:
    """The peer a socket's `peername` belongs to: its IPv4 address or IPv6 /64 (else its text)."""
    host = peername[0] if isinstance(peername, tuple) and peername else peername
    try:
        address = ipaddress.ip_address(str(host).partition("%")[0])  # drop an IPv6 zone id
    except ValueError:
        return str(host)  # not IP (a Unix socket in tests): one peer per name
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, _IPV6_HOST_PREFIX), strict=False))
    return str(address)


class ConnectionSlots:
    """Open connections in total and per peer; used from the gateway's event loop only."""

    def __init__(self, max_connections: int, max_per_peer: int) -> None:
        self._max = max_connections
        self._max_per_peer = max_per_peer
        self._open: Counter[str] = Counter()
        self._total = 0
        self._full_logged = False
        self._peers_logged: set[str] = set()

    @property
    def total(self) -> int:
        return self._total

    def open_for(self, peer: str) -> int:
        return self._open[peer]

    def take(self, peer: str) -> tuple[Refusal | None, bool]:
        """Take a slot for `peer`: (None, False) if granted, else (why not, whether to log it)."""
        if self._open[peer] >= self._max_per_peer:
            first = peer not in self._peers_logged
            self._peers_logged.add(peer)
            return "max_connections_per_peer", first
        if self._total >= self._max:
            first = not self._full_logged
            self._full_logged = True
            return "max_connections", first
        self._open[peer] += 1
        self._total += 1
        return None, False

    def give_back(self, peer: str) -> None:
        """Free a slot taken by `peer`."""
        self._open[peer] -= 1
        if self._open[peer] <= 0:
            del self._open[peer]
        self._total -= 1
        self._full_logged = False
        self._peers_logged.discard(peer)
