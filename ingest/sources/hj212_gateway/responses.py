"""What the gateway answers a logger: the access check and the packets sent back (pure).

Reference, "Responses": a packet whose Flag has bit A set waits for an answer.
- Uploads (the standard's data commands, CN 2xxx: 2011, 2051, 2061, 2031, 2021 ...) get 9014
  with the packet's QN, PW and MN, sent only once the packet is durably handed off.
- A time request (CN 1011) gets the standard's request sequence: 9011 `QnRtn=1` (ready), a 1011
  carrying `SystemTime` (the platform's clock in the station's zone), then 9012 `ExeRtn=1`.
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
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from config.registry import Registry, Station
from ingest.decoders.hj212 import Packet, build_response, encode_packet
from ingest.decoders.hj212.packet import RESPONSE_FLAG
from ingest.sources.hj212_gateway.config import UnknownMnPolicy

# HJ 212-2017 command families: 2xxx data commands (uploads), 9xxx interaction (responses).
_UPLOAD_FAMILY: Final = "2"
_RESPONSE_FAMILY: Final = "9"
# CN 1011: extract the field device's time (提取现场机时间).
TIME_REQUEST_CN: Final = "1011"
# PolId names an instrument by its pollutant code (`w01018`, `a21026`); a longer value is not one,
# and echoing it could make the answer longer than a packet can be.
_MAX_POL_ID: Final = 24


class QnRtn(IntEnum):
    """9011 request return codes (reference, "Responses")."""

    READY = 1
    REFUSED = 2
    WRONG_PASSWORD = 3


class ExeRtn(IntEnum):
    """9012 execution result codes."""

    SUCCESS = 1


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


def plan_answers(
    packet: Packet,
    access: Access,
    *,
    unknown_mn: UnknownMnPolicy,
    answer_time_requests: bool,
    now: datetime,
    timezone: str,
) -> tuple[bytes, ...]:
    """The packets to send back once `packet` is durably handed off, in order (empty: none).

    `now` is aware; the time answer gives it in `timezone` (the station's zone).
    """
    if not packet.wants_response or packet.cn.startswith(_RESPONSE_FAMILY):
        return ()
    if access is Access.WRONG_PASSWORD:
        return (build_response(packet, "9011", rtn=QnRtn.WRONG_PASSWORD),)
    if access is Access.UNKNOWN_MN and unknown_mn != "accept":
        return () if unknown_mn == "ignore" else (build_response(packet, "9011", rtn=QnRtn.REFUSED),)
    if packet.cn.startswith(_UPLOAD_FAMILY):
        return (build_response(packet, "9014"),)
    if packet.cn == TIME_REQUEST_CN and answer_time_requests:
        return (
            build_response(packet, "9011", rtn=QnRtn.READY),
            _time_upload(packet, now, timezone),
            build_response(packet, "9012", rtn=ExeRtn.SUCCESS),
        )
    return (build_response(packet, "9011", rtn=QnRtn.REFUSED),)


def _time_upload(packet: Packet, now: datetime, timezone: str) -> bytes:
    local = now.astimezone(ZoneInfo(timezone))
    fields: dict[str, str] = {}
    pol_id = packet.field("PolId")  # the instrument asked about, echoed as the standard's example does
    if pol_id is not None and len(pol_id) <= _MAX_POL_ID:
        fields["PolId"] = pol_id
    fields["SystemTime"] = local.strftime("%Y%m%d%H%M%S")
    return encode_packet(
        qn=packet.qn,
        st=packet.st,
        cn=TIME_REQUEST_CN,
        pw=packet.pw,
        mn=packet.mn,
        flag=RESPONSE_FLAG,
        cp=(fields,),
        crc=packet.crc,
    )
