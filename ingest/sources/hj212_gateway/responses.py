"""What the gateway answers a logger: the access check and the answers to its packets (pure).

Reference, "Responses": a packet whose Flag has bit A set waits for an answer. Every answer
carries the version bits of the packet's Flag (`Flag=4` to a 2017 logger's `Flag=5`, `Flag=8` to
`Flag=9`, `Flag=0` to HJ/T 212-2005's `Flag=1`), its QN, PW and MN, its CRC variant and hex case.
- Uploads (the standard's data commands, CN 2xxx: 2011, 2051, 2061, 2031, 2021 ...) get 9014,
  sent only once the packet is durably handed off.
- A time calibration request (CN 1013, a notification) gets 9013; the clock (`clock`) then sets
  the logger's time with 1012.
- A logger's time upload (CN 1011 with SystemTime: its answer to the platform's 1011) is read by
  the clock and never answered; 1011 is a request only the platform makes.
- Any other request gets 9011 `QnRtn=2`: the platform executes no commands from loggers.
- Responses from the logger (CN 9xxx) are never answered.
- A wrong password gets 9011 `QnRtn=3`, whatever the command. An MN missing from the registry
  gets no answer (the logger retries, and an operator sees `unknown_station` dead letters), or
  9011 `QnRtn=2` with `unknown_mn: refuse`, or the answers of a station without a password with
  `unknown_mn: accept` (for daemons whose validation accepts unknown stations).
A station with no `hj212_password` accepts any PW. Packets that fail to parse (bad CRC, malformed)
get no answer: their fields cannot be trusted, and a logger resends what is not acknowledged.
"""

from __future__ import annotations

import hmac
from enum import IntEnum, StrEnum
from typing import Final

from config.registry import Registry, Station
from ingest.decoders.hj212 import Packet, build_response
from ingest.sources.hj212_gateway.clock import GET_TIME_CN, TIME_REQUEST_CN
from ingest.sources.hj212_gateway.config import UnknownMnPolicy

# HJ 212-2017 command families: 2xxx data commands (uploads), 9xxx interaction (responses).
_UPLOAD_FAMILY: Final = "2"
_RESPONSE_FAMILY: Final = "9"


class QnRtn(IntEnum):
    """9011 request return codes (reference, "Responses")."""

    READY = 1
    REFUSED = 2
    WRONG_PASSWORD = 3


class Access(StrEnum):
    """What the registry says of a packet's MN and PW; also the `outcome` metric label."""

    OK = "ok"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - an outcome name, not a password
    UNKNOWN_MN = "unknown_mn"


def check_access(packet: Packet, registry: Registry) -> tuple[Access, Station | None]:
    """The packet's standing: a registered MN with the right PW (or none configured) is OK."""
    station = registry.by_mn(packet.mn)
    if station is None:
        return Access.UNKNOWN_MN, None
    if station.hj212_password is None:
        return Access.OK, station
    expected = station.hj212_password.get_secret_value().encode()
    if hmac.compare_digest(packet.pw.encode(), expected):
        return Access.OK, station
    return Access.WRONG_PASSWORD, station


def trusted(access: Access, unknown_mn: UnknownMnPolicy) -> bool:
    """Whether the sender is served as a station: a registered MN with its PW, or any with `accept`."""
    return access is Access.OK or (access is Access.UNKNOWN_MN and unknown_mn == "accept")


def plan_answers(packet: Packet, access: Access, *, unknown_mn: UnknownMnPolicy) -> tuple[bytes, ...]:
    """The answers to send back once `packet` is durably handed off, in order (empty: none)."""
    if not packet.wants_response or packet.cn.startswith(_RESPONSE_FAMILY):
        return ()
    if access is Access.WRONG_PASSWORD:
        return (build_response(packet, "9011", rtn=QnRtn.WRONG_PASSWORD),)
    if not trusted(access, unknown_mn):
        return () if unknown_mn == "ignore" else (build_response(packet, "9011", rtn=QnRtn.REFUSED),)
    if packet.cn.startswith(_UPLOAD_FAMILY):
        return (build_response(packet, "9014"),)
    if packet.cn == TIME_REQUEST_CN:
        return (build_response(packet, "9013"),)
    if packet.cn == GET_TIME_CN and packet.field("SystemTime") is not None:
        return ()
    return (build_response(packet, "9011", rtn=QnRtn.REFUSED),)
