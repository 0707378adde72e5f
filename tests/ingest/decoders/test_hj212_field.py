"""HJ 212 as loggers in the field speak it: answer versions, the platform's requests, CRC variants, time notes."""

from __future__ import annotations

from datetime import datetime

import pytest

from ingest.decoders.hj212 import (
    HJ212Decoder,
    annotate_time_shift,
    build_request,
    build_response,
    crc16_modbus,
    crc16_modbus_swapped,
    encode_packet,
    frame,
    parse_packet,
)
from ingest.decoders.hj212.crc import CRC_FUNCTIONS, accepted_variants
from ingest.errors import RejectedPayload, RejectReason

MN = "NM100000_0005"
QN = "20261125080012344"  # every CRC variant of `_packet(5)` has a hex letter, so its case shows


def _packet(flag: int | None, *, cn: str = "2011", crc: bytes | None = None) -> bytes:
    raw = encode_packet(
        qn=QN,
        st="21",
        cn=cn,
        pw="123456",
        mn=MN,
        flag=flag,
        cp=({"DataTime": "20261125080000", "w01001-Rtd": "7.1"},),
    )
    return raw if crc is None else raw[:-6] + crc + b"\r\n"


@pytest.mark.parametrize(("flag", "answered"), [(5, 4), (4, 4), (9, 8), (1, 0), (13, 12), (None, 0)])
def test_answers_mirror_the_version_bits_of_the_request(flag: int | None, answered: int) -> None:
    """9011, 9012, 9013 and 9014 carry bits 2-7 of the request's Flag, bit A clear; no Flag (2005) is version 0."""
    request = parse_packet(_packet(flag))
    for cn in ("9011", "9012", "9013", "9014"):
        answer = parse_packet(build_response(request, cn))
        assert (answer.cn, answer.flag, answer.st, answer.qn, answer.mn) == (cn, answered, "91", QN, MN)
        assert not answer.wants_response


def test_9013_answers_a_notification_with_an_empty_cp() -> None:
    """9013 (notification response) echoes QN, PW and MN with an empty CP."""
    answer = parse_packet(build_response(parse_packet(_packet(5, cn="1013")), "9013"))
    assert (answer.cn, answer.cp, answer.pw) == ("9013", (), "123456")


def test_a_platform_request_asks_for_an_answer_in_the_loggers_version() -> None:
    """1012 to a logger: its ST, PW and MN, a new QN, its version bits with bit A, and the fields given."""
    logger = parse_packet(_packet(9))
    request = parse_packet(
        build_request(logger, "1012", "20261125080100000", {"SystemTime": "20261125080100"})
    )
    assert (request.cn, request.st, request.qn, request.flag, request.pw, request.mn) == (
        "1012",
        "21",
        "20261125080100000",
        9,
        "123456",
        MN,
    )
    assert request.field("SystemTime") == "20261125080100"
    assert request.wants_response


def test_the_newer_rf_header_field_is_accepted_and_recorded() -> None:
    """RF= in the header parses and is kept on the packet; other unknown header fields stay refused."""
    segment = f"QN={QN};ST=21;CN=2011;PW=1;MN={MN};Flag=4;RF=1;CP=&&DataTime=20261125080000;w01001-Rtd=7.1&&"
    assert parse_packet(frame(segment)).rf == "1"
    assert parse_packet(_packet(4)).rf is None
    with pytest.raises(RejectedPayload) as caught:
        parse_packet(frame(segment.replace("RF=1", "RX=1")))
    assert caught.value.reason is RejectReason.MALFORMED


def test_byte_swapped_modbus_check_value() -> None:
    """The byte-swapped variant is CRC-16/MODBUS's check value 4B37 with its bytes swapped: 374B."""
    assert crc16_modbus(b"123456789") == 0x4B37
    assert crc16_modbus_swapped(b"123456789") == 0x374B


def test_the_configured_variants_always_include_the_standard_one() -> None:
    """`crc:` names variants accepted besides HJ 212's own, in order, each once."""
    assert accepted_variants("hj212") == ("hj212",)
    assert accepted_variants("modbus") == ("hj212", "modbus")
    assert accepted_variants(["modbus_swapped", "modbus", "modbus_swapped"]) == (
        "hj212",
        "modbus_swapped",
        "modbus",
    )


@pytest.mark.parametrize(
    ("variant", "lower"), [("modbus", False), ("modbus_swapped", False), ("modbus", True), ("hj212", True)]
)
def test_an_answer_uses_the_crc_variant_and_case_of_its_packet(variant: str, lower: bool) -> None:
    """A logger that checks its answers' CRC as it writes its own (variant, hex case) can check ours."""
    crc_field = b"%04X" % CRC_FUNCTIONS[variant](_packet(5)[6:-6])  # type: ignore[index]
    packet = _packet(5, crc=crc_field.lower() if lower else crc_field)
    parsed = parse_packet(packet, crc=["modbus", "modbus_swapped"])
    assert (parsed.crc, parsed.crc_lower_case) == (variant, lower)
    answer = build_response(parsed)
    assert answer[-6:-2] == (answer[-6:-2].lower() if lower else answer[-6:-2].upper())
    assert parse_packet(answer, crc=["modbus", "modbus_swapped"]).crc == variant


def test_the_time_shift_note_changes_only_the_times_of_the_readings() -> None:
    """Annotated by the gateway, a packet decodes to the same readings moved by the shift and marked time-corrected."""
    packet = parse_packet(_packet(5))
    plain = HJ212Decoder().decode("", _packet(5)).readings
    noted = HJ212Decoder().decode("", annotate_time_shift(packet, -90)).readings
    assert [(r.parameter, r.value) for r in noted] == [(r.parameter, r.value) for r in plain]
    assert [r.ts for r in noted] == [datetime(2026, 11, 25, 7, 58, 30)]
    assert [(r.time_corrected, plain[0].time_corrected) for r in noted] == [(True, False)]
    assert parse_packet(annotate_time_shift(packet, -90)).field("DataTime") == "20261125080000"
