"""What the gateway answers: the MN and password check, the answer to each kind of packet, topics."""

from __future__ import annotations

from datetime import datetime

import pytest

from config.registry import Registry
from ingest.decoders.hj212 import Packet, encode_data_packet, encode_packet, parse_packet
from ingest.sources.hj212_gateway.handoff import INVALID_MN_TOPIC, sniff_mn, topic_for
from ingest.sources.hj212_gateway.responses import Access, QnRtn, check_access, plan_answers
from tests.helpers import station

QN = "20261125083000123"
REGISTRY = Registry(
    [
        station("guarded", mn="MN-GUARDED", hj212_password="s3cret"),
        station("open", mn="MN-OPEN"),
    ]
)


def packet(
    cn: str = "2011", *, mn: str = "MN-GUARDED", pw: str = "s3cret", flag: int = 5, **cp: str
) -> Packet:
    raw = encode_packet(
        qn=QN, st="21", cn=cn, pw=pw, mn=mn, flag=flag, cp=(cp or {"DataTime": "20261125083000"},)
    )
    return parse_packet(raw)


def answers(pkt: Packet, access: Access | None = None, *, unknown_mn: str = "ignore") -> list[Packet]:
    built = plan_answers(
        pkt,
        access if access is not None else check_access(pkt, REGISTRY)[0],
        unknown_mn=unknown_mn,  # type: ignore[arg-type]
    )
    return [parse_packet(answer) for answer in built]


def test_a_registered_mn_with_its_password_is_ok() -> None:
    """The right PW for a guarded station passes and names the station."""
    access, found = check_access(packet(), REGISTRY)
    assert access is Access.OK
    assert found is not None
    assert found.id == "guarded"


def test_a_wrong_password_is_caught() -> None:
    """Any other PW, including an empty one or a prefix of the right one, is a wrong password."""
    for pw in ("s3cre", "s3cret1", "S3CRET", ""):
        assert check_access(packet(pw=pw), REGISTRY)[0] is Access.WRONG_PASSWORD


def test_a_station_without_a_password_accepts_any() -> None:
    """No `hj212_password` configured: every PW is accepted."""
    assert check_access(packet(mn="MN-OPEN", pw="whatever"), REGISTRY)[0] is Access.OK


def test_an_mn_missing_from_the_registry_is_unknown() -> None:
    """An MN the registry does not list is unknown, whatever its PW."""
    assert check_access(packet(mn="MN-STRANGER"), REGISTRY) == (Access.UNKNOWN_MN, None)


@pytest.mark.parametrize("cn", ["2011", "2051", "2061", "2031", "2021"])
def test_an_upload_asking_for_an_answer_gets_a_data_response_with_its_qn(cn: str) -> None:
    """Data commands get 9014 with the packet's QN, PW and MN, ST=91, Flag=4 and an empty CP."""
    [answer] = answers(packet(cn))
    assert (answer.cn, answer.qn, answer.st, answer.pw, answer.mn) == (
        "9014",
        QN,
        "91",
        "s3cret",
        "MN-GUARDED",
    )
    assert answer.flag == 4
    assert answer.cp == ()


def test_a_packet_not_asking_for_an_answer_gets_none() -> None:
    """Flag without bit A (4, or absent as from HJ/T 212-2005 loggers) means no answer."""
    assert answers(packet(flag=4)) == []
    legacy = parse_packet(encode_packet(st="21", cn="2011", pw="s3cret", mn="MN-GUARDED", flag=None, cp=()))
    assert answers(legacy) == []


def test_a_wrong_password_gets_a_request_response_saying_so() -> None:
    """Wrong PW: 9011 with QnRtn=3, for uploads and requests alike."""
    for cn in ("2011", "1062"):
        [answer] = answers(packet(cn, pw="nope"))
        assert (answer.cn, answer.qn, answer.field("QnRtn")) == ("9011", QN, str(QnRtn.WRONG_PASSWORD))


def test_an_unknown_mn_gets_what_the_policy_says() -> None:
    """Unknown MN: no answer by default, 9011 QnRtn=2 with `refuse`, the normal 9014 with `accept`."""
    stranger = packet(mn="MN-STRANGER")
    assert answers(stranger) == []
    [refused] = answers(stranger, unknown_mn="refuse")
    assert (refused.cn, refused.field("QnRtn")) == ("9011", "2")
    [accepted] = answers(stranger, unknown_mn="accept")
    assert accepted.cn == "9014"


def test_a_time_calibration_request_gets_a_notification_response() -> None:
    """CN 1013 (the logger asks to have its clock set) gets 9013 with its QN; the clock sends the 1012."""
    [answer] = answers(packet("1013", PolId="w01018"))
    assert (answer.cn, answer.qn, answer.mn, answer.flag, answer.cp) == ("9013", QN, "MN-GUARDED", 4, ())


def test_a_loggers_time_upload_is_read_not_answered() -> None:
    """CN 1011 with SystemTime is the logger's answer to the platform's 1011: never answered, even with bit A."""
    assert answers(packet("1011", PolId="w01018", SystemTime="20261125083010")) == []


def test_a_logger_asking_with_1011_is_refused() -> None:
    """1011 is the platform's request: a logger sending it without SystemTime gets 9011 QnRtn=2 like other requests."""
    [answer] = answers(packet("1011", PolId="w01018"))
    assert (answer.cn, answer.field("QnRtn")) == ("9011", "2")


def test_other_requests_are_refused() -> None:
    """A request the platform does not execute (e.g. CN 1062, set the real-time interval) gets QnRtn=2."""
    [answer] = answers(packet("1062", RtdInterval="30"))
    assert (answer.cn, answer.qn, answer.field("QnRtn")) == ("9011", QN, "2")


def test_responses_from_the_logger_are_not_answered() -> None:
    """A 9xxx packet is itself an answer: answering it would start a loop."""
    assert answers(packet("9014")) == []
    assert answers(packet("9011", QnRtn="1")) == []


def test_an_answer_carries_the_crc_variant_of_the_packet() -> None:
    """A logger using the Modbus CRC gets its answer with the Modbus CRC."""
    raw = encode_data_packet(
        "MN-OPEN",
        "x",
        "2011",
        datetime(2026, 11, 25, 8),
        {"ph": (7.0, "N")},
        want_response=True,
        crc="modbus",
    )
    pkt = parse_packet(raw, crc="modbus")
    built = plan_answers(pkt, Access.OK, unknown_mn="ignore")
    assert parse_packet(built[0], crc="modbus").crc == "modbus"


def test_an_answer_carries_the_version_of_the_packet() -> None:
    """A logger speaking a later version (Flag=9, as a field packet does) gets Flag=8, not the 2017 Flag=4."""
    [answer] = answers(packet(flag=9))
    assert (answer.cn, answer.flag) == ("9014", 8)


def test_topics_name_valid_mns_and_park_the_rest() -> None:
    """A valid MN gives `hj212/{MN}`; none, an empty one, a long one or one with other characters `hj212/_invalid`."""
    assert topic_for("50010300000001") == "hj212/50010300000001"
    assert topic_for("A-b-9") == "hj212/A-b-9"
    assert topic_for("NM100000_0005") == "hj212/NM100000_0005"  # a field MN with '_'
    for bad in (None, "", "x" * 25, "a/b", "a+b", "mn#", "站"):
        assert topic_for(bad) == INVALID_MN_TOPIC


def test_the_mn_of_a_broken_packet_is_sniffed_for_routing() -> None:
    """A packet that fails to parse is still routed by its MN field when one can be read."""
    good = encode_data_packet("MN-1", "pw", "2011", datetime(2026, 11, 25, 8), {"ph": (7.0, "N")})
    corrupted = good[:-6] + b"0000\r\n"
    assert sniff_mn(corrupted) == "MN-1"
    assert sniff_mn(good[:30]) is None  # cut before the MN
    assert sniff_mn(b"##0010MN=X1;CP=&&&&") == "X1"
    assert sniff_mn(b"garbage") is None
