"""HJ 212: CRC, packet parsing, responses, encoder round trips and fuzzing (vectors: cases/hj212/)."""

from __future__ import annotations

import importlib
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import ingest.decoders.hj212 as hj212_package
import ingest.decoders.hj212.decoder as hj212_decoder
import ingest.decoders.hj212.packet as hj212_packet
import ingest.sources.hj212_gateway.handoff as gateway_handoff
from config.hj212 import default_code_table
from ingest.decoders.hj212 import (
    HJ212Config,
    HJ212Decoder,
    Packet,
    ResponseCommand,
    build_response,
    crc16_hj212,
    crc16_modbus,
    encode_data_packet,
    encode_packet,
    frame,
    parse_packet,
)
from ingest.errors import RejectedPayload, RejectReason
from ingest.model import DataFlag

# HJ 212-2017's example packet, and an HJ/T 212-2005 upload published with a public implementation.
STANDARD_EXAMPLE = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&RtdInterval=30&&1C80\r\n"
)
HJ212_2005_EXAMPLE = (
    b"##0178ST=32;CN=2011;PW=123456;MN=0873HHMZWSLH02;CP=&&DataTime=20160103133030;060-Rtd=3.0943,"
    b"060-Flag=N;011-Rtd=18.0412,011-Flag=N;001-Rtd=8.2137,001-Flag=N;B01-Rtd=10.9890,B01-Flag=N&&a9c1\r\n"
)
MN = "50010300000001"
LOCAL_8AM = datetime(2026, 11, 25, 8, 0)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bitwise_crc(data: bytes, *, modbus: bool = False) -> int:
    """The reference's CRC, bit by bit as its text reads (no table), to check the fast one against."""
    crc = 0xFFFF
    for byte in data:
        crc = crc ^ byte if modbus else (crc >> 8) ^ byte
        for _ in range(8):
            carry = crc & 1
            crc >>= 1
            if carry:
                crc ^= 0xA001
    return crc


def segment_of(packet: bytes) -> bytes:
    return packet[6:-6]


# --- CRC ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("packet", "crc"), [(STANDARD_EXAMPLE, 0x1C80), (HJ212_2005_EXAMPLE, 0xA9C1)])
def test_crc_of_published_packets(packet: bytes, crc: int) -> None:
    """The CRC of the standard's example segment is 1C80, and of the 2005 example A9C1, as published."""
    assert crc16_hj212(segment_of(packet)) == crc
    assert bitwise_crc(segment_of(packet)) == crc


def test_modbus_crc_check_value() -> None:
    """The Modbus variant gives CRC-16/MODBUS's catalogued check value 4B37 for '123456789'."""
    assert crc16_modbus(b"123456789") == 0x4B37
    assert crc16_hj212(b"123456789") != 0x4B37


@given(st.binary(max_size=300))
@FUZZ
def test_table_crc_matches_bitwise(data: bytes) -> None:
    """The table-driven CRCs equal the bit-by-bit reading of the reference for any bytes."""
    assert crc16_hj212(data) == bitwise_crc(data)
    assert crc16_modbus(data) == bitwise_crc(data, modbus=True)


# --- parsing -----------------------------------------------------------------------------


def test_parse_standard_example() -> None:
    """Every header field of the standard's example lands in the Packet, CP in groups of fields."""
    packet = parse_packet(STANDARD_EXAMPLE)
    assert packet == Packet(
        st="32",
        cn="1062",
        pw="100000",
        mn="010000A8900016F000169DC0",
        qn="20160801085857223",
        flag=5,
        cp=((("RtdInterval", "30"),),),
        segment=segment_of(STANDARD_EXAMPLE).decode(),
        crc="hj212",
    )
    assert packet.wants_response
    assert not packet.is_split
    assert packet.field("RtdInterval") == "30"
    assert packet.field("DataTime") is None


@pytest.mark.parametrize(
    ("flag", "wants", "split"), [(None, False, False), (4, False, False), (5, True, False), (7, True, True)]
)
def test_flag_bits(flag: int | None, wants: bool, split: bool) -> None:
    """Flag bit 0 asks for a response and bit 1 marks a split packet; no Flag (2005) asks for nothing."""
    pnum, pno = (2, 1) if split else (None, None)
    packet = parse_packet(
        encode_packet(st="21", cn="2011", pw="123456", mn=MN, flag=flag, pnum=pnum, pno=pno)
    )
    assert (packet.flag, packet.wants_response, packet.is_split) == (flag, wants, split)
    assert (packet.pnum, packet.pno) == ((2, 1) if split else (None, None))


def test_modbus_crc_is_recorded_on_the_packet() -> None:
    """With crc='modbus' both variants pass, and the packet says which one it carried."""
    segment = b"ST=21;CN=2011;PW=123456;MN=" + MN.encode() + b";CP=&&&&"
    modbus = b"##%04d%b%04X\r\n" % (len(segment), segment, crc16_modbus(segment))
    assert parse_packet(modbus, crc="modbus").crc == "modbus"
    assert parse_packet(frame(segment.decode()), crc="modbus").crc == "hj212"
    with pytest.raises(RejectedPayload) as caught:
        parse_packet(modbus)
    assert caught.value.reason is RejectReason.BAD_CRC


@pytest.mark.parametrize(
    ("max_segment_length", "reason"), [(100, RejectReason.TOO_LARGE), (101, None), (9999, None)]
)
def test_max_segment_length(max_segment_length: int, reason: RejectReason | None) -> None:
    """A segment longer than the configured maximum is TOO_LARGE; up to it, it parses."""
    if reason is None:
        assert parse_packet(STANDARD_EXAMPLE, max_segment_length=max_segment_length).cn == "1062"
        return
    with pytest.raises(RejectedPayload) as caught:
        parse_packet(STANDARD_EXAMPLE, max_segment_length=max_segment_length)
    assert caught.value.reason is reason


def test_length_field_over_the_maximum_is_too_large_before_anything_else() -> None:
    """A short packet announcing a segment over the maximum is TOO_LARGE, not truncated."""
    with pytest.raises(RejectedPayload) as caught:
        parse_packet(b"##2000QN=1;\r\n")
    assert caught.value.reason is RejectReason.TOO_LARGE


# --- responses ---------------------------------------------------------------------------


def test_data_response_9014() -> None:
    """9014 echoes QN, PW and MN with ST=91, Flag=4 and an empty CP, framed with a valid CRC."""
    response = build_response(parse_packet(STANDARD_EXAMPLE))
    segment = b"QN=20160801085857223;ST=91;CN=9014;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&"
    assert response == b"##%04d%b%04X\r\n" % (len(segment), segment, bitwise_crc(segment))


@pytest.mark.parametrize(("cn", "key"), [("9011", "QnRtn"), ("9012", "ExeRtn")])
def test_request_and_execution_responses(cn: ResponseCommand, key: str) -> None:
    """9011 carries QnRtn and 9012 ExeRtn, with the given result code."""
    response = parse_packet(build_response(parse_packet(STANDARD_EXAMPLE), cn, rtn=3))
    assert (response.cn, response.st, response.flag, response.qn) == (cn, "91", 4, "20160801085857223")
    assert response.cp == (((key, "3"),),)
    assert not response.wants_response


def test_response_without_qn_and_with_modbus_crc() -> None:
    """A 2005 packet without QN gets an answer without QN; a Modbus-CRC packet gets a Modbus-CRC answer."""
    assert b"QN=" not in build_response(parse_packet(HJ212_2005_EXAMPLE))
    segment = f"QN=1;ST=21;CN=2011;PW=123456;MN={MN};Flag=5;CP=&&&&".encode()
    modbus = b"##%04d%b%04X\r\n" % (len(segment), segment, crc16_modbus(segment))
    response = build_response(parse_packet(modbus, crc="modbus"))
    assert int(response[-6:-2], 16) == crc16_modbus(segment_of(response))


# --- encoder round trips -----------------------------------------------------------------

EVERY_FLAG = {
    code: (7.0 + i, flag)
    for i, (code, flag) in enumerate(
        zip(["ph", "temp", "do", "cond", "turb", "codmn", "cod", "tp"], DataFlag, strict=True)
    )
}


@pytest.mark.parametrize("cn", sorted(default_code_table().data_commands))
def test_round_trip_every_command_and_flag(cn: str) -> None:
    """Each data command round-trips values, flags, MN and DataTime through its own value field."""
    command = default_code_table().data_commands[cn]
    packet = encode_data_packet(MN, "123456", cn, LOCAL_8AM, EVERY_FLAG)
    assert f"w01001-{command.value_field}=7.0".encode() in packet
    decoded = HJ212Decoder().decode("hj212/" + MN, packet)
    assert decoded.rejections == []
    assert {r.parameter: (r.value, r.flag) for r in decoded.readings} == EVERY_FLAG
    assert {(r.ts, r.mn, r.station_id, r.assume_tz) for r in decoded.readings} == {
        (LOCAL_8AM, MN, None, "Asia/Shanghai")
    }


def test_encoder_header_defaults() -> None:
    """QN defaults to DataTime + 000 ms, ST to 21 (surface water), Flag to 4 (5 when an answer is wanted)."""
    packet = parse_packet(encode_data_packet(MN, "654321", "2011", LOCAL_8AM, {"ph": (7.1, "N")}))
    assert (packet.qn, packet.st, packet.flag, packet.pw) == ("20261125080000000", "21", 4, "654321")
    wanted = parse_packet(
        encode_data_packet(MN, "654321", "2011", LOCAL_8AM, {"ph": (7.1, "N")}, want_response=True)
    )
    assert wanted.wants_response


def test_encoder_writes_aware_times_in_the_station_zone() -> None:
    """An aware time is written as wall-clock time of the given zone; the decoder reads it back naive."""
    utc = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    urumqi = encode_data_packet(MN, "123456", "2011", utc, {"ph": (7.1, "N")}, timezone="Asia/Urumqi")
    assert parse_packet(urumqi).field("DataTime") == "20261125060000"
    shanghai = HJ212Decoder().decode("", encode_data_packet(MN, "123456", "2011", utc, {"ph": (7.1, "N")}))
    assert shanghai.readings[0].ts == LOCAL_8AM


def test_encoder_maps_parameters_and_passes_unknown_codes() -> None:
    """Our codes are sent as 2017 codes; a code the table lacks is sent as given."""
    packet = parse_packet(
        encode_data_packet(MN, "123456", "2011", LOCAL_8AM, {"nh3n": (0.5, "N"), "w99999": (1.0, "N")})
    )
    assert packet.field("w21003-Rtd") == "0.5"
    assert packet.field("w99999-Rtd") == "1.0"


@pytest.mark.parametrize(
    ("cn", "values"), [("9014", {"ph": (7.0, "N")}), ("2011", {"ph": (float("nan"), "N")})]
)
def test_encoder_refuses_what_it_cannot_send(cn: str, values: dict[str, tuple[float, str]]) -> None:
    """A command without readings, or a value that is not finite, is a ValueError."""
    with pytest.raises(ValueError, match=r"9014|nan"):
        encode_data_packet(MN, "123456", cn, LOCAL_8AM, values)


@given(st.floats(allow_nan=False, allow_infinity=False))
@FUZZ
def test_values_round_trip_exactly(value: float) -> None:
    """Any finite float is written without an exponent and reads back as the same float."""
    packet = encode_data_packet(MN, "123456", "2011", LOCAL_8AM, {"do": (value, "N")}, codes=None)
    assert not re.search(rb"Rtd=[^,;&]*[eE]", packet)
    [reading] = HJ212Decoder(max_segment_length=9999).decode("", packet).readings
    assert reading.value == value


# --- configuration -----------------------------------------------------------------------


def test_config_rejects_unknown_zone_and_impossible_maximum() -> None:
    """An unknown time zone or a maximum the length field cannot state fails at construction."""
    with pytest.raises(ValidationError, match="time zone"):
        HJ212Decoder(timezone="Asia/Chongqing-not")
    with pytest.raises(ValidationError, match="max_segment_length"):
        HJ212Decoder(max_segment_length=10000)


def test_docstring_example_is_a_valid_config() -> None:
    """The Example: block of the package docstring validates as an HJ212Config."""
    doc = hj212_package.__doc__ or ""
    example = doc.split("Example:\n", 1)[1]
    config = HJ212Config.model_validate(yaml.safe_load(example))
    assert (config.crc, config.max_segment_length) == ("modbus", 4096)


def test_docstring_packet_is_valid() -> None:
    """The sample packet of the package docstring (two lines there) parses, CRC and length included."""
    lines = (hj212_package.__doc__ or "").splitlines()[2:4]
    packet = "".join(line.strip() for line in lines).replace("\\r\\n", "\r\n").encode()
    assert [r.parameter for r in HJ212Decoder().decode("", packet).readings] == ["ph", "do"]


def test_decoder_timezone_option_sets_assume_tz() -> None:
    """The configured zone is the assume_tz of every reading."""
    packet = encode_data_packet(MN, "123456", "2011", LOCAL_8AM, {"ph": (7.1, "N")})
    assert HJ212Decoder(timezone="Asia/Urumqi").decode("", packet).readings[0].assume_tz == "Asia/Urumqi"


# --- fuzzing: nothing but RejectedPayload escapes ------------------------------------------

VALID = encode_data_packet(
    MN, "123456", "2061", LOCAL_8AM, {"ph": (7.1, "N"), "do": (8.2, "D"), "nh3n": (0.4, "T")}
)
DECODER = HJ212Decoder()
MODBUS_DECODER = HJ212Decoder(crc="modbus", max_segment_length=9999)


def decode_or_reject(payload: bytes, decoder: HJ212Decoder = DECODER) -> None:
    try:
        decoded = decoder.decode("hj212/x", payload)
    except RejectedPayload:
        return
    for reading in decoded.readings:
        assert reading.mn is not None
        assert reading.ts.tzinfo is None


@given(st.binary(max_size=1200))
@FUZZ
def test_random_bytes_only_reject(data: bytes) -> None:
    """Random bytes decode or raise RejectedPayload, nothing else."""
    decode_or_reject(data)
    decode_or_reject(b"##" + data, MODBUS_DECODER)


BYTES = st.integers(0, 255)


@st.composite
def mutated(draw: st.DrawFn, source: bytes, alphabet: st.SearchStrategy[int] = BYTES) -> bytes:
    data = bytearray(source)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if action == "flip" and position < len(data):
            data[position] = draw(alphabet)
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 20))]
        elif action == "insert":
            data[position:position] = bytes(draw(st.lists(alphabet, min_size=1, max_size=10)))
        elif action == "truncate":
            del data[position:]
    return bytes(data)


@given(mutated(VALID))
@FUZZ
def test_mutated_packets_only_reject(data: bytes) -> None:
    """Byte-level mutations of a valid packet decode or raise RejectedPayload."""
    decode_or_reject(data)


# Mutations re-framed with a valid CRC, so they reach the segment parser rather than the CRC check.
_SEPARATORS = st.sampled_from([*";,=&-", "&&", "CP=&&", "DataTime=", "-Rtd=", "-Flag=", "Flag=", "PNO="])


@given(
    mutated(segment_of(VALID), st.integers(0x20, 0x7E)),
    st.lists(st.tuples(st.integers(0, 400), _SEPARATORS), max_size=3),
)
@FUZZ
def test_mutated_segments_with_valid_crc_only_reject(segment: bytes, inserts: list[tuple[int, str]]) -> None:
    """Mutated data segments with a correct length and CRC decode or raise RejectedPayload."""
    text = segment.decode("latin-1")
    for position, piece in inserts:
        text = text[:position] + piece + text[position:]
    body = text.encode("latin-1")
    decode_or_reject(b"##%04d%b%04X\r\n" % (len(body) % 10000, body, crc16_hj212(body)), MODBUS_DECODER)


_CP_ATOM = st.text(alphabet="w0123456789-RtdAvgFlagNXDataTime.;,=&e+ ", max_size=12)


@given(st.lists(_CP_ATOM, max_size=20), st.sampled_from(["2011", "2051", "2061", "2031", "9014"]))
@FUZZ
def test_random_cp_blocks_only_reject(atoms: list[str], cn: str) -> None:
    """Random CP contents under a valid header decode or raise RejectedPayload."""
    segment = f"QN=1;ST=21;CN={cn};PW=1;MN={MN};Flag=4;CP=&&DataTime=20261125080000;{''.join(atoms)}&&"
    decode_or_reject(frame(segment))


# --- linear time: no pattern of the decoder or the gateway can backtrack ---------------------------

# Python's own regex parser (private, untyped; stable since 3.11 renamed it from `sre_parse`): the
# parse tree shows each repeat, its bounds and whether it is possessive.
_SRE: Any = importlib.import_module("re._constants")
_SRE_PARSE: Any = importlib.import_module("re._parser")
# The patterns in the path of untrusted bytes: the parser's, the decoder's, the gateway's sniffing.
_PATTERN_MODULES = (hj212_packet, hj212_decoder, gateway_handoff)
# Patterns run with `search` retry at every offset: an unbounded repeat there is quadratic even
# when possessive, so these may hold only bounded ones.
_SEARCHED = {hj212_packet._NOT_PRINTABLE.pattern, gateway_handoff._MN_FIELD.pattern}


def _patterns() -> list[re.Pattern[str] | re.Pattern[bytes]]:
    found: list[re.Pattern[str] | re.Pattern[bytes]] = []
    for module in _PATTERN_MODULES:
        for value in vars(module).values():
            candidates = value.values() if isinstance(value, dict) else [value]
            found.extend(p for p in candidates if isinstance(p, re.Pattern))
    return found


def _backtracking_repeats(pattern: str | bytes, *, searched: bool) -> list[str]:
    """Repeats that can give back what they took over an unbounded run (the cause of quadratic time)."""
    found: list[str] = []

    def walk(items: Any) -> None:
        for op, arg in items:
            if op in (_SRE.MAX_REPEAT, _SRE.MIN_REPEAT, _SRE.POSSESSIVE_REPEAT):
                low, high, body = arg
                unbounded = high == _SRE.MAXREPEAT
                if unbounded and (searched or op is not _SRE.POSSESSIVE_REPEAT):
                    found.append(f"{op} {{{low},}} of {body}")
                walk(body)
            elif op is _SRE.BRANCH:
                for branch in arg[1]:
                    walk(branch)
            elif op in (_SRE.SUBPATTERN, _SRE.ATOMIC_GROUP):
                walk(arg[-1])

    walk(_SRE_PARSE.parse(pattern))
    return found


def test_no_pattern_can_backtrack_over_a_long_run() -> None:
    """Every unbounded repeat is possessive (and patterns used with `search` have none), so matching is linear in the input."""
    patterns = _patterns()
    assert hj212_decoder._NUMBER in patterns
    assert hj212_packet._FIELD in patterns
    for pattern in patterns:
        searched = pattern.pattern in _SEARCHED
        assert _backtracking_repeats(pattern.pattern, searched=searched) == [], pattern.pattern


def test_the_structural_check_catches_the_old_number_pattern() -> None:
    """The check above flags the quadratic pattern the decoder used to have, and passes its replacement."""
    assert _backtracking_repeats(_OLD_NUMBER.pattern, searched=False)
    assert not _backtracking_repeats(hj212_decoder._NUMBER.pattern, searched=False)


_OLD_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@given(st.text(alphabet="0123456789.eE+-x ", max_size=14))
@FUZZ
def test_the_linear_number_pattern_accepts_exactly_what_the_old_one_did(text: str) -> None:
    """Possessive quantifiers change the time, not the language: the same strings are numbers."""
    assert (hj212_decoder._NUMBER.fullmatch(text) is None) == (_OLD_NUMBER.fullmatch(text) is None)


@pytest.mark.parametrize("tail", ["x", "e", "e+", ".5.", "1e5x", "-"])
def test_a_long_digit_run_is_read_or_refused_as_a_whole(tail: str) -> None:
    """9 900 digits and a bad tail do not match the number pattern; either way the value is not a (finite) number."""
    digits = "1" * 9900
    packet = frame(f"ST=21;CN=2011;PW=1;MN={MN};CP=&&DataTime=20261125080000;w01001-Rtd={digits}{tail}&&")
    [rejection] = MODBUS_DECODER.decode("hj212/x", packet).rejections
    assert rejection.reason is RejectReason.NOT_A_NUMBER
    assert hj212_decoder._NUMBER.fullmatch(digits) is not None
    assert hj212_decoder._NUMBER.fullmatch(digits + tail) is None


@pytest.mark.parametrize(
    ("data_time", "year"),
    [("10000101000000", 1000), ("00010101000000", 1), ("99991231235959", 9999), ("00000101000000", None)],
)
def test_extreme_data_times_decode_or_reject_with_a_reason(data_time: str, year: int | None) -> None:
    """Times at and past the calendar's ends give a naive reading (validation bounds it) or BAD_TIMESTAMP, nothing else."""
    packet = frame(f"ST=21;CN=2011;PW=1;MN={MN};CP=&&DataTime={data_time};w01001-Rtd=7.5&&")
    if year is None:
        with pytest.raises(RejectedPayload) as caught:
            DECODER.decode("hj212/x", packet)
        assert caught.value.reason is RejectReason.BAD_TIMESTAMP
        return
    [reading] = DECODER.decode("hj212/x", packet).readings
    assert (reading.ts.year, reading.ts.tzinfo) == (year, None)
