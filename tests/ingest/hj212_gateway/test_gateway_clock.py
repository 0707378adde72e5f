"""Loggers' clocks at the gateway: 1013 -> 9013 then 1012, drift corrected and readings shifted, 1011 answers read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from config.registry import Registry
from ingest.decoders.hj212 import HJ212Decoder, Packet, encode_packet, frame, parse_packet
from ingest.sources.hj212_gateway import HJ212GatewayConfig
from ingest.sources.hj212_gateway.admission import Admission, Verdict
from ingest.sources.hj212_gateway.framing import Frame
from ingest.sources.hj212_gateway.lockout import PasswordLockout
from tests.helpers import station
from tests.ingest.hj212_gateway.gateway_support import Logger, MemoryHandoff, metric, running_gateway

REGISTRY = Registry([station("guarded", mn="MN-GUARDED", hj212_password="s3cret")])
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 0, 30, 15, tzinfo=UTC)  # 08:30:15 in Beijing
NOW_LOCAL = "20261125083015"


def admission(**config: object) -> Admission:
    settings = HJ212GatewayConfig.model_validate(config)
    lockout = PasswordLockout(max_failures=5, window_s=60, lockout_s=60)
    return Admission(settings, REGISTRY, lockout, lambda: NOW)


def upload(
    error: timedelta,
    *,
    cn: str = "2061",
    flag: int | None = 5,
    pw: str = "s3cret",
    qn: bool = True,
    **cp: str,
) -> bytes:
    """An upload from MN-GUARDED whose clock is `error` off: its QN (and, for real-time data, DataTime) show it."""
    logger_now = (NOW + error).astimezone(SHANGHAI)
    data_time = logger_now if cn == "2011" else logger_now.replace(minute=0, second=0) - timedelta(hours=1)
    value = "w01001-Rtd" if cn == "2011" else "w01001-Avg"
    return encode_packet(
        qn=logger_now.strftime("%Y%m%d%H%M%S") + "123" if qn else None,
        st="21",
        cn=cn,
        pw=pw,
        mn="MN-GUARDED",
        flag=flag,
        cp=({"DataTime": data_time.strftime("%Y%m%d%H%M%S"), value: "7.5", **cp},),
    )


def judge(gate: Admission, packet: bytes, mono: float = 0.0) -> tuple[Verdict, list[Packet]]:
    verdict = gate.judge(Frame(packet), "peer", mono)
    assert verdict.error is None
    return verdict, [parse_packet(answer) for answer in verdict.answers]


def test_a_clock_within_the_tolerance_is_left_alone() -> None:
    """59 s off with the default 1-minute tolerance: answered 9014, handed off as sent, nothing else."""
    packet = upload(timedelta(seconds=59))
    verdict, sent = judge(admission(), packet)
    assert [p.cn for p in sent] == ["9014"]
    assert (verdict.payload, verdict.topic) == (None, "hj212/MN-GUARDED")


def test_a_logger_ahead_is_set_and_its_readings_shifted_back() -> None:
    """20 min ahead: 9014, then 1012 with the platform's time; the readings are handed off shifted back and time-corrected."""
    packet = upload(timedelta(minutes=20))
    verdict, sent = judge(admission(), packet)
    assert [p.cn for p in sent] == ["9014", "1012"]
    set_time = sent[1]
    assert (set_time.field("SystemTime"), set_time.flag, set_time.st, set_time.pw, set_time.mn) == (
        NOW_LOCAL,
        5,
        "21",
        "s3cret",
        "MN-GUARDED",
    )
    assert set_time.field("PolId") is None  # the logger's own clock
    assert verdict.payload is not None
    [shifted] = HJ212Decoder().decode("", verdict.payload).readings
    [as_sent] = HJ212Decoder().decode("", packet).readings
    assert (as_sent.ts - shifted.ts, shifted.time_corrected, as_sent.time_corrected) == (
        timedelta(minutes=20),
        True,
        False,
    )
    assert verdict.clock is not None
    assert (verdict.clock.correction, verdict.clock.shift_s) == ("drift", -1200)


def test_a_packet_without_room_for_the_note_is_handed_off_as_sent() -> None:
    """A segment the 4-digit length field could not hold with the note: handed off unshifted, the clock still set."""
    packet = upload(timedelta(minutes=20), RtdInterval="9" * 9870)
    assert 9999 - len("EcowatchTimeShift=-1200;") < len(packet) - 12 <= 9999
    verdict, sent = judge(admission(max_segment_length=9999), packet)
    assert ([p.cn for p in sent], verdict.payload, verdict.error) == (["9014", "1012"], None, None)


def test_a_late_backlog_packet_keeps_its_times_but_real_time_data_is_shifted() -> None:
    """Behind by an hour: hourly data may be a resent backlog (times kept), real-time data cannot (shifted); the clock is set either way."""
    gate = admission()
    verdict, sent = judge(gate, upload(-timedelta(hours=1)))
    assert ([p.cn for p in sent], verdict.payload) == (["9014", "1012"], None)
    verdict, sent = judge(admission(), upload(-timedelta(hours=1), cn="2011"))
    assert verdict.payload is not None
    [reading] = HJ212Decoder().decode("", verdict.payload).readings
    assert reading.ts == NOW.astimezone(SHANGHAI).replace(tzinfo=None, microsecond=0)


def test_corrections_are_rate_limited_and_a_drift_keeps_one_shift() -> None:
    """One 1012 per MN per `clock_correction_interval`; while the error holds (give or take transit), every packet gets the first shift."""
    gate = admission(clock_correction_interval="PT10M")
    first, sent_first = judge(gate, upload(timedelta(minutes=20, seconds=0.4)), mono=0.0)
    second, sent_second = judge(gate, upload(timedelta(minutes=19, seconds=59.2)), mono=60.0)
    third, sent_third = judge(gate, upload(timedelta(minutes=20)), mono=601.0)
    assert [[p.cn for p in sent] for sent in (sent_first, sent_second, sent_third)] == [
        ["9014", "1012"],
        ["9014"],
        ["9014", "1012"],
    ]
    assert [v.clock.shift_s for v in (first, second, third) if v.clock is not None] == [-1200, -1200, -1200]
    corrected, _ = judge(gate, upload(timedelta(seconds=1)), mono=700.0)
    assert corrected.payload is None


def test_a_time_calibration_request_is_answered_9013_then_set() -> None:
    """1013: 9013 with the request's QN and the logger's version, then 1012 with the PolId asked and the platform's time."""
    request = encode_packet(qn="20261125083000000", st="21", cn="1013", pw="s3cret", mn="MN-GUARDED", flag=5)
    verdict, (notified, set_time) = judge(admission(), request)
    assert (notified.cn, notified.qn, notified.flag) == ("9013", "20261125083000000", 4)
    assert (set_time.cn, set_time.field("SystemTime"), set_time.flag) == ("1012", NOW_LOCAL, 5)
    assert set_time.qn != notified.qn
    assert verdict.topic == "hj212/MN-GUARDED"  # handed off like any packet (dead-lettered: no readings)


def test_the_loggers_answers_to_a_correction_are_read_not_handed_off() -> None:
    """9011 and 9012 with the 1012's QN are consumed and noted; a 9012 for no request of ours is handed off."""
    gate = admission()
    _, (_, set_time) = judge(gate, upload(timedelta(minutes=20)))
    assert set_time.qn is not None
    answers = [
        encode_packet(qn=set_time.qn, st="91", cn=cn, pw="s3cret", mn="MN-GUARDED", flag=4, cp=({key: "1"},))
        for cn, key in (("9011", "QnRtn"), ("9012", "ExeRtn"))
    ]
    for answer in answers:
        verdict, sent = judge(gate, answer)
        assert (verdict.consumed, verdict.topic, verdict.valid, sent) == (True, None, True, [])
        assert verdict.clock is not None
        assert verdict.clock.answer == ("1012", parse_packet(answer).cn, "1")
    again, _ = judge(gate, answers[1])
    assert (again.consumed, again.topic) == (False, "hj212/MN-GUARDED")


def test_an_answer_echoing_an_old_qn_says_nothing_of_the_clock() -> None:
    """A logger's 9014 (or a 9012 to another platform) echoes a request's QN: no correction, however old."""
    old = encode_packet(qn="20200101000000000", st="91", cn="9014", pw="s3cret", mn="MN-GUARDED", flag=4)
    verdict, sent = judge(admission(), old)
    assert (sent, verdict.clock, verdict.topic) == ([], None, "hj212/MN-GUARDED")


def test_a_time_query_when_configured_and_its_answer_read() -> None:
    """With `clock_query_interval`, 1011 goes out after a packet; the logger's 1011 upload with that QN is read, and corrects a clock that is off."""
    gate = admission(clock_query_interval="PT1H")
    _, sent = judge(gate, upload(timedelta(seconds=5)))
    assert [p.cn for p in sent] == ["9014", "1011"]
    query = sent[1]
    assert (query.flag, query.cp) == (5, ())
    _, again = judge(gate, upload(timedelta(seconds=5)), mono=10.0)
    assert [p.cn for p in again] == ["9014"]  # not before the interval
    ahead = (NOW + timedelta(minutes=7)).astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S")
    reply = encode_packet(
        qn=query.qn, st="21", cn="1011", pw="s3cret", mn="MN-GUARDED", flag=4, cp=({"SystemTime": ahead},)
    )
    verdict, corrections = judge(gate, reply, mono=20.0)
    assert (verdict.consumed, verdict.topic) == (True, None)
    assert [p.cn for p in corrections] == ["1012"]
    assert verdict.clock is not None
    assert (verdict.clock.logger_time, verdict.clock.error_s) == (ahead, 420.0)


def test_no_query_is_sent_unless_configured() -> None:
    """By default the gateway never asks a logger for its time (1011)."""
    _, sent = judge(admission(), upload(timedelta(seconds=5)))
    assert [p.cn for p in sent] == ["9014"]


@pytest.mark.parametrize(
    ("packet", "config"),
    [
        (upload(timedelta(minutes=20), pw="wrong"), {}),
        (upload(timedelta(minutes=20)), {"respond": False}),
    ],
    ids=["wrong-password", "respond-off"],
)
def test_only_trusted_loggers_of_a_responding_gateway_are_touched(
    packet: bytes, config: dict[str, object]
) -> None:
    """A wrong password, or `respond: false`: no 1012, no shift, whatever the clock says."""
    verdict, sent = judge(admission(**config), packet)
    assert "1012" not in [p.cn for p in sent]
    assert verdict.payload is None


def test_correct_clocks_off_still_answers_9013_and_shifts() -> None:
    """`correct_clocks: false`: 1013 gets its 9013 and no 1012; a logger ahead still has its readings shifted."""
    gate = admission(correct_clocks=False)
    request = encode_packet(qn="20261125083000000", st="21", cn="1013", pw="s3cret", mn="MN-GUARDED", flag=5)
    assert [p.cn for p in judge(gate, request)[1]] == ["9013"]
    verdict, sent = judge(gate, upload(timedelta(minutes=20)))
    assert ([p.cn for p in sent], verdict.payload is not None) == (["9014"], True)


def test_shift_readings_off_keeps_the_times_as_sent() -> None:
    """`shift_readings: false`: the clock is set, the readings are handed off as sent."""
    verdict, sent = judge(admission(shift_readings=False), upload(timedelta(minutes=20)))
    assert ([p.cn for p in sent], verdict.payload) == (["9014", "1012"], None)


def test_an_hj212_2005_logger_is_measured_by_real_time_datatime_and_set_in_its_version() -> None:
    """No QN: the DataTime of real-time data shows the clock; the 1012 carries version 0 with bit A (Flag=1)."""
    verdict, sent = judge(admission(), upload(timedelta(minutes=20), cn="2011", flag=1, qn=False))
    assert [(p.cn, p.flag) for p in sent] == [("9014", 0), ("1012", 1)]
    assert verdict.payload is not None
    hourly, _ = judge(admission(), upload(timedelta(minutes=20), flag=1, qn=False))
    assert hourly.clock is None  # hourly DataTime is a period, not the clock


def test_a_field_mn_with_underscore_is_served() -> None:
    """`MN=NM100000_0005` (Flag=9): handed off on its own topic and answered 9014 with Flag=8 (served here as an
    accepted unknown MN: the registry's MN pattern does not take `_` yet)."""
    packet = frame(
        "QN=20261125083015000;ST=21;CN=2061;PW=123456;MN=NM100000_0005;Flag=9;"
        "CP=&&DataTime=20261125070000;w01001-Avg=7.64,w01001-Flag=N&&"
    )
    verdict, sent = judge(admission(unknown_mn="accept"), packet)
    assert (verdict.topic, [(p.cn, p.flag) for p in sent]) == ("hj212/NM100000_0005", [("9014", 8)])


def test_a_drifting_logger_over_tcp_is_set_and_its_answers_stay_in_the_gateway() -> None:
    """Over TCP: the upload is handed off shifted; 9014 and 1012 come back; the logger's 9011 and 9012 are read, counted and logged, not handed off."""
    handoff = MemoryHandoff()
    drift = {"trigger": "drift"}
    before = metric("ecowatch_hj212_clock_corrections_total", **drift)
    confirmed = {"request": "1012", "answer": "9012", "result": "ok"}
    confirmed_before = metric("ecowatch_hj212_clock_answers_total", **confirmed)
    with capture_logs() as logs, running_gateway(handoff, REGISTRY, clock=lambda: NOW) as gateway:
        logger = Logger(gateway.port)
        logger.send(upload(timedelta(minutes=20)))
        data_response, set_time = logger.read_packets(2)
        assert (data_response.cn, set_time.cn, set_time.field("SystemTime")) == ("9014", "1012", NOW_LOCAL)
        for cn, key in (("9011", "QnRtn"), ("9012", "ExeRtn")):
            logger.send(
                encode_packet(
                    qn=set_time.qn, st="91", cn=cn, pw="s3cret", mn="MN-GUARDED", flag=4, cp=({key: "1"},)
                )
            )
        logger.send(upload(timedelta(seconds=1)))  # corrected: no shift, no 1012
        [last] = logger.read_packets(1)
        assert last.cn == "9014"
        logger.close()
    assert [parse_packet(payload).field("EcowatchTimeShift") for _, payload in handoff.messages] == [
        "-1200",
        None,
    ]
    assert metric("ecowatch_hj212_clock_corrections_total", **drift) == before + 1
    assert metric("ecowatch_hj212_clock_answers_total", **confirmed) == confirmed_before + 1
    events = [e for e in logs if e["event"] in ("hj212_clock_correction", "hj212_clock_answer")]
    assert [(e["event"], e.get("trigger"), e.get("answer")) for e in events] == [
        ("hj212_clock_correction", "drift", None),
        ("hj212_clock_answer", None, "9011"),
        ("hj212_clock_answer", None, "9012"),
    ]
    assert events[0]["error_s"] == pytest.approx(1200, abs=1)
