"""HJ 212 packets: framing, the data segment, and the packets a platform sends back.

    ##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n

`parse_packet` checks a packet in this order, so each fault gets its own reason and detail: size
(TOO_LARGE); ASCII only (MALFORMED); the `##` header (MALFORMED); the 4-digit length field
(BAD_LENGTH, or TOO_LARGE past the maximum); the CR LF terminator (BAD_LENGTH when the packet is
shorter than announced, i.e. truncated, else MALFORMED); the segment length (BAD_LENGTH); the CRC
(BAD_CRC); the syntax of the segment (MALFORMED). The CRC hex digits are read in either case
(HJ 212-2005 loggers send lower case; the packet records it, and its answers are written so).
Header fields: ST, CN, PW and MN are required, QN and Flag optional (HJ/T 212-2005 loggers omit
both), PNUM and PNO required when Flag marks a split packet, RF accepted and recorded (a newer
header field some loggers send; its meaning is not ours to use). MN is 1-24 of `A-Z a-z 0-9 - _`:
field loggers use `_` (`MN=NM100000_0005`).

Answers mirror the version bits (2-7) of the request's Flag: a 2017 logger (`Flag=5`) gets
`Flag=4`, one speaking a later version (`Flag=9`) gets `Flag=8`, an HJ/T 212-2005 one `Flag=0`.

`annotate_time_shift` is the gateway's note on a packet from a logger whose clock is off: a first
CP group `EcowatchTimeShift=<seconds>`, re-framed with the standard CRC. The decoder adds those
seconds to the packet's times and marks its readings time-corrected; the length limit allows for
the note, so a packet that fitted before it fits after.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from ingest.decoders.hj212.crc import CRC_FUNCTIONS, CrcChoice, CrcVariant, accepted_variants
from ingest.errors import RejectedPayload, RejectReason

# HJ 212-2017: the data segment is 0..1024 bytes; longer data is split into packets (Flag bit D).
MAX_SEGMENT_LENGTH: Final = 1024
# The 4-digit length field can announce no more than this.
LENGTH_FIELD_LIMIT: Final = 9999
_FRAME_OVERHEAD: Final = 12  # "##", 4 length digits, 4 CRC digits, CR LF

# Flag bits (reference, "Data segment"): A = answer wanted, D = split into packets; bits 2-7 the
# protocol version, 1 for HJ 212-2017.
FLAG_WANTS_RESPONSE: Final = 0b01
FLAG_SPLIT: Final = 0b10
FLAG_VERSION_2017: Final = 1 << 2
FLAG_VERSION_BITS: Final = 0b1111_1100
# Responses (reference, "Responses"): system-interaction ST.
RESPONSE_ST: Final = "91"

# 9011 request response, 9012 execution result, 9013 notification response, 9014 data response.
ResponseCommand = Literal["9011", "9012", "9013", "9014"]

# MN: HJ 212-2017 allows up to 24 characters; loggers in the field use `_` besides letters, digits
# and `-` (a real ST=21 packet: `MN=NM100000_0005`).
MN_SYNTAX: Final = r"^[A-Za-z0-9_\-]{1,24}$"
# The gateway's note on a packet whose logger clock is off: seconds added to its times.
TIME_SHIFT_FIELD: Final = "EcowatchTimeShift"
_TIME_SHIFT_MARK: Final = b"CP=&&" + TIME_SHIFT_FIELD.encode() + b"="
# The largest shift noted: ten digits of seconds, 317 years either way (`EcowatchTimeShift=` and
# `-9999999999;` fit the allowance the length limit grants the note).
MAX_TIME_SHIFT_S: Final = 9_999_999_999
TIME_SHIFT_ALLOWANCE: Final = 32

_HEADER_SYNTAX: Final[Mapping[str, re.Pattern[str]]] = {
    "QN": re.compile(r"[0-9]{1,20}"),
    "ST": re.compile(r"[0-9]{2}"),
    "CN": re.compile(r"[0-9]{4}"),
    "PW": re.compile(r"[^;,=&]{0,64}"),
    "MN": re.compile(MN_SYNTAX),
    "Flag": re.compile(r"[0-9]{1,3}"),
    "PNUM": re.compile(r"[0-9]{1,4}"),
    "PNO": re.compile(r"[0-9]{1,4}"),
    "RF": re.compile(r"[^;,=&]{0,32}"),
}
_REQUIRED_HEADER: Final = ("ST", "CN", "PW", "MN")
# Possessive, like every unbounded repeat in the decoder: linear time on any input.
_FIELD = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_\-]*+)=([^;,=&]*+)")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")

CpGroups = tuple[tuple[tuple[str, str], ...], ...]


@dataclass(frozen=True, slots=True)
class Packet:
    """One checked HJ 212 packet. `cp` keeps the CP groups (`;`) of `key=value` fields (`,`) in order."""

    st: str
    cn: str
    pw: str
    mn: str
    qn: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None
    cp: CpGroups = ()
    segment: str = ""
    crc: CrcVariant = "hj212"
    crc_lower_case: bool = False
    rf: str | None = None

    @property
    def version_bits(self) -> int:
        """Flag bits 2-7, the protocol version (1 << 2 for 2017); 0 without a Flag (HJ/T 212-2005)."""
        return (self.flag or 0) & FLAG_VERSION_BITS

    @property
    def wants_response(self) -> bool:
        """Flag bit 0 (A): the sender waits for an answer (9014 for data)."""
        return self.flag is not None and bool(self.flag & FLAG_WANTS_RESPONSE)

    @property
    def is_split(self) -> bool:
        """Flag bit 1 (D): one of PNUM packets, numbered PNO."""
        return self.flag is not None and bool(self.flag & FLAG_SPLIT)

    def field(self, key: str) -> str | None:
        """The first CP value under `key`, e.g. `DataTime` or `QnRtn`."""
        for group in self.cp:
            for name, value in group:
                if name == key:
                    return value
        return None


def parse_packet(
    data: bytes, *, crc: CrcChoice = "hj212", max_segment_length: int = MAX_SEGMENT_LENGTH
) -> Packet:
    """Check and split one packet; raises `RejectedPayload`.

    `crc="modbus"` (or `"modbus_swapped"`, or a list) accepts that Modbus CRC as well as the
    standard one; the packet records which, and whether its hex digits were lower case.
    """
    if data.find(_TIME_SHIFT_MARK, 0, max_segment_length + _FRAME_OVERHEAD + TIME_SHIFT_ALLOWANCE) >= 0:
        max_segment_length = min(max_segment_length + TIME_SHIFT_ALLOWANCE, LENGTH_FIELD_LIMIT)
    segment, variant, lower_case = _unframe(data, accepted_variants(crc), max_segment_length)
    return _parse_segment(segment, variant, lower_case)


def _unframe(
    data: bytes, accepted: tuple[CrcVariant, ...], max_segment_length: int
) -> tuple[str, CrcVariant, bool]:
    if len(data) > max_segment_length + _FRAME_OVERHEAD:
        raise RejectedPayload(
            RejectReason.TOO_LARGE,
            f"{len(data)} bytes: longer than a packet with the maximum data segment of {max_segment_length}",
        )
    if not data.isascii():
        offset = next(i for i, byte in enumerate(data) if byte > 0x7F)
        raise RejectedPayload(
            RejectReason.MALFORMED, f"non-ASCII byte 0x{data[offset]:02X} at offset {offset}"
        )
    if not data.startswith(b"##"):
        raise RejectedPayload(RejectReason.MALFORMED, f"missing '##' header: starts {data[:8]!r}")
    length_field = data[2:6]
    if not (len(length_field) == 4 and length_field.isdigit()):
        raise RejectedPayload(
            RejectReason.BAD_LENGTH, f"length field {length_field!r} is not 4 decimal digits"
        )
    length = int(length_field)
    if length > max_segment_length:
        raise RejectedPayload(
            RejectReason.TOO_LARGE,
            f"length field announces {length} bytes, over the maximum data segment of {max_segment_length}",
        )
    expected = length + _FRAME_OVERHEAD
    if not data.endswith(b"\r\n"):
        if len(data) < expected - 2:
            raise RejectedPayload(
                RejectReason.BAD_LENGTH,
                f"truncated: {len(data)} bytes, the length field announces {expected}",
            )
        raise RejectedPayload(RejectReason.MALFORMED, "missing CR LF terminator")
    if len(data) != expected:
        raise RejectedPayload(
            RejectReason.BAD_LENGTH,
            f"length field says {length} bytes, so the packet should have {expected}; it has {len(data)}",
        )
    segment, crc_field = data[6:-6], data[-6:-2]
    if _HEX4.fullmatch(crc_field) is None:
        raise RejectedPayload(RejectReason.BAD_CRC, f"CRC field {crc_field!r} is not 4 hex digits")
    sent = int(crc_field, 16)
    for variant in accepted:
        if CRC_FUNCTIONS[variant](segment) == sent:
            return segment.decode("ascii"), variant, crc_field != crc_field.upper()
    computed = CRC_FUNCTIONS["hj212"](segment)
    raise RejectedPayload(
        RejectReason.BAD_CRC, f"CRC {sent:04X} does not match the data segment (HJ 212 CRC {computed:04X})"
    )


def _parse_segment(segment: str, variant: CrcVariant, lower_case: bool) -> Packet:
    if (bad := _NOT_PRINTABLE.search(segment)) is not None:
        raise RejectedPayload(
            RejectReason.MALFORMED, f"control character {bad.group()!r} in the data segment"
        )
    head, marker, rest = segment.partition("CP=&&")
    if not marker or (head and not head.endswith(";")):
        raise RejectedPayload(RejectReason.MALFORMED, "no 'CP=&&...&&' block after the header fields")
    if not rest.endswith("&&"):
        raise RejectedPayload(RejectReason.MALFORMED, "the CP block is not closed with '&&'")
    header = _parse_header(head[:-1])
    flag = _int_or_none(header.get("Flag"))
    if flag is not None and flag > 0xFF:
        raise RejectedPayload(RejectReason.MALFORMED, f"Flag={flag} does not fit in 8 bits")
    pnum, pno = _int_or_none(header.get("PNUM")), _int_or_none(header.get("PNO"))
    if flag is not None and flag & FLAG_SPLIT and (pnum is None or pno is None):
        raise RejectedPayload(
            RejectReason.MALFORMED, f"Flag={flag} marks a split packet without PNUM and PNO"
        )
    if pnum is not None and pno is not None and not 1 <= pno <= pnum:
        raise RejectedPayload(RejectReason.MALFORMED, f"PNO={pno} is not in 1..PNUM={pnum}")
    return Packet(
        st=header["ST"],
        cn=header["CN"],
        pw=header["PW"],
        mn=header["MN"],
        qn=header.get("QN"),
        flag=flag,
        pnum=pnum,
        pno=pno,
        cp=_parse_cp(rest[:-2]),
        segment=segment,
        crc=variant,
        crc_lower_case=lower_case,
        rf=header.get("RF"),
    )


def _parse_header(text: str) -> dict[str, str]:
    header: dict[str, str] = {}
    for item in text.split(";") if text else ():
        key, equals, value = item.partition("=")
        syntax = _HEADER_SYNTAX.get(key)
        if not equals or syntax is None:
            raise RejectedPayload(
                RejectReason.MALFORMED,
                f"header field {item!r:.40} is not one of QN ST CN PW MN Flag PNUM PNO RF",
            )
        if key in header:
            raise RejectedPayload(RejectReason.MALFORMED, f"header field {key} given twice")
        if syntax.fullmatch(value) is None:
            raise RejectedPayload(RejectReason.MALFORMED, f"header field {key}={value!r:.40} is malformed")
        header[key] = value
    missing = [key for key in _REQUIRED_HEADER if key not in header]
    if missing:
        raise RejectedPayload(RejectReason.MALFORMED, f"missing header field(s) {' '.join(missing)}")
    return header


def _parse_cp(text: str) -> CpGroups:
    groups: list[tuple[tuple[str, str], ...]] = []
    # Empty groups and fields (a trailing ';' before '&&') are common and harmless.
    for group in text.split(";"):
        fields: list[tuple[str, str]] = []
        for item in group.split(","):
            if not item:
                continue
            match = _FIELD.fullmatch(item)
            if match is None:
                raise RejectedPayload(RejectReason.MALFORMED, f"CP field {item!r:.40} is not key=value")
            fields.append((match[1], match[2]))
        if fields:
            groups.append(tuple(fields))
    return tuple(groups)


def _int_or_none(text: str | None) -> int | None:
    return None if text is None else int(text)


def frame(segment: str, *, crc: CrcVariant = "hj212", lower_case: bool = False) -> bytes:
    """Wrap a data segment as a packet: `##`, length, segment, CRC, CR LF."""
    body = segment.encode("ascii")
    if len(body) > LENGTH_FIELD_LIMIT:
        raise ValueError(f"a data segment of {len(body)} bytes does not fit the 4-digit length field")
    crc_field = b"%04x" % CRC_FUNCTIONS[crc](body) if lower_case else b"%04X" % CRC_FUNCTIONS[crc](body)
    return b"##%04d%b%b\r\n" % (len(body), body, crc_field)


def encode_packet(
    *,
    st: str,
    cn: str,
    pw: str,
    mn: str,
    cp: Sequence[Mapping[str, str]] = (),
    qn: str | None = None,
    flag: int | None = FLAG_VERSION_2017,
    pnum: int | None = None,
    pno: int | None = None,
    crc: CrcVariant = "hj212",
    lower_case: bool = False,
) -> bytes:
    """A packet from its fields; `cp` holds the CP groups, each a mapping of its fields."""
    header = {"QN": qn, "ST": st, "CN": cn, "PW": pw, "MN": mn, "Flag": flag, "PNUM": pnum, "PNO": pno}
    parts = [f"{key}={value}" for key, value in header.items() if value is not None]
    body = ";".join(",".join(f"{key}={value}" for key, value in group.items()) for group in cp)
    return frame(";".join(parts) + f";CP=&&{body}&&", crc=crc, lower_case=lower_case)


def build_response(packet: Packet, cn: ResponseCommand = "9014", *, rtn: int = 1) -> bytes:
    """The platform's answer to `packet` (reference, "Responses"), with the packet's QN, PW and MN.

    9014 answers a data upload and 9013 a notification (such as a 1013 time calibration request),
    both with an empty CP; 9011 answers a request with `QnRtn=rtn` (1 ready to execute, 2 refused,
    3 wrong password, ...); 9012 reports an execution result as `ExeRtn=rtn`. The Flag carries the
    version bits of the packet's and asks for no answer. The answer carries the CRC variant (and
    hex case) the packet did, so a Modbus-CRC logger can check it.
    """
    cp: tuple[Mapping[str, str], ...] = ()
    if cn == "9011":
        cp = ({"QnRtn": str(rtn)},)
    elif cn == "9012":
        cp = ({"ExeRtn": str(rtn)},)
    return encode_packet(
        qn=packet.qn,
        st=RESPONSE_ST,
        cn=cn,
        pw=packet.pw,
        mn=packet.mn,
        flag=packet.version_bits,
        cp=cp,
        crc=packet.crc,
        lower_case=packet.crc_lower_case,
    )


def build_request(packet: Packet, cn: str, qn: str, fields: Mapping[str, str]) -> bytes:
    """A request of the platform's (1011 get time, 1012 set time...) to the logger that sent `packet`.

    As the standard's examples have it: the logger's ST, PW and MN, a new QN, the logger's version
    bits with bit A set (the logger answers 9011, then 9012), and the packet's CRC variant and case.
    """
    return encode_packet(
        qn=qn,
        st=packet.st,
        cn=cn,
        pw=packet.pw,
        mn=packet.mn,
        flag=packet.version_bits | FLAG_WANTS_RESPONSE,
        cp=(fields,),
        crc=packet.crc,
        lower_case=packet.crc_lower_case,
    )


def annotate_time_shift(packet: Packet, seconds: int) -> bytes:
    """`packet` re-framed with `EcowatchTimeShift=seconds` as its first CP group (standard CRC).

    Only the note and the CRC change; the logger's own fields (its DataTime, QN...) stay as sent.
    """
    head, marker, rest = packet.segment.partition("CP=&&")
    return frame(f"{head}{marker}{TIME_SHIFT_FIELD}={seconds};{rest}")
