"""The gateway's limits without sockets: peers and slots, password lockouts, and judging any bytes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.registry import Registry
from ingest.decoders.hj212 import crc16_hj212, encode_packet, frame, parse_packet
from ingest.sources.hj212_gateway import HJ212GatewayConfig
from ingest.sources.hj212_gateway.admission import INTERNAL_ERROR, PASSWORD_LOCKOUT, Admission
from ingest.sources.hj212_gateway.framing import Event, Frame, Framer, Garbage
from ingest.sources.hj212_gateway.lockout import PasswordLockout
from ingest.sources.hj212_gateway.peers import ConnectionSlots, peer_key, peer_label
from tests.helpers import station
from tests.ingest.hj212_gateway.gateway_support import data_packet

REGISTRY = Registry(
    [
        station("guarded", mn="MN-GUARDED", hj212_password="s3cret"),
        station("other", mn="MN-OTHER", hj212_password="0ther"),
        station("open", mn="MN-OPEN"),
    ]
)
NOW = datetime(2026, 11, 25, 0, 30, 15, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def admission(**config: object) -> Admission:
    settings_ = HJ212GatewayConfig.model_validate(
        {"max_password_failures": 3, "password_failure_window": 60, "password_lockout": 300, **config}
    )
    lockout = PasswordLockout(
        max_failures=settings_.max_password_failures,
        window_s=settings_.password_failure_window.total_seconds(),
        lockout_s=settings_.password_lockout.total_seconds(),
    )
    return Admission(settings_, REGISTRY, lockout, lambda: NOW)


# --- peers and connection slots ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peername", "key"),
    [
        (("192.0.2.7", 40001), "192.0.2.7"),
        (("2001:db8:1:2:aaaa::1", 40001, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:bbbb::9", 40002, 0, 0), "2001:db8:1:2::/64"),
        (("::ffff:192.0.2.7", 40001, 0, 0), "192.0.2.7"),
        (("fe80::1%eth0", 40001, 0, 2), "fe80::/64"),
        ("/run/gateway.sock", "/run/gateway.sock"),
    ],
)
def test_a_peer_is_its_address_or_ipv6_network_never_its_port(peername: object, key: str) -> None:
    """Peers are keyed by IPv4 address or IPv6 /64 (mapped IPv4 as IPv4), so new ports or IPv6 hosts do not escape the limits."""
    assert peer_key(peername) == key


def test_peer_labels_keep_the_port_for_logs() -> None:
    """Logs name a connection by host and port."""
    assert peer_label(("192.0.2.7", 40001)) == "192.0.2.7:40001"
    assert peer_label("unix") == "unix"


def test_slots_cap_each_peer_and_the_total_and_log_each_episode_once() -> None:
    """A peer at its cap is refused (logged once until it frees a slot) while another peer still gets slots, up to the total."""
    slots = ConnectionSlots(max_connections=5, max_per_peer=2)
    assert [slots.take("a") for _ in range(2)] == [(None, False)] * 2
    assert slots.take("a") == ("max_connections_per_peer", True)
    assert slots.take("a") == ("max_connections_per_peer", False)
    assert [slots.take("b") for _ in range(2)] == [(None, False)] * 2
    assert slots.take("c") == (None, False)
    assert slots.take("d") == ("max_connections", True)
    assert slots.take("e") == ("max_connections", False)
    slots.give_back("a")
    assert (slots.total, slots.open_for("a")) == (4, 1)
    assert slots.take("a") == (None, False)  # a slot freed: the logger gets back in
    assert slots.take("a") == ("max_connections_per_peer", True)  # a new episode, logged again
    for peer in ("a", "a", "b", "b", "c"):
        slots.give_back(peer)
    assert slots.total == 0


# --- password lockout ----------------------------------------------------------------------------------


def test_failures_within_the_window_lock_the_pair_out_for_the_lockout_time() -> None:
    """The third failure within the window starts a lockout that ends after `lockout_s`; other pairs are unaffected."""
    lockout = PasswordLockout(max_failures=3, window_s=60, lockout_s=300)
    key = ("MN-GUARDED", "192.0.2.7")
    assert [lockout.failed(key, t) for t in (0.0, 10.0, 20.0)] == [False, False, True]
    assert lockout.locked(key, 20.0)
    assert lockout.locked(key, 319.9)
    assert not lockout.locked(("MN-GUARDED", "192.0.2.8"), 21.0)
    assert not lockout.locked(("MN-OTHER", "192.0.2.7"), 21.0)
    assert not lockout.locked(key, 320.0)
    assert len(lockout) == 0  # nothing left to remember
    assert not lockout.failed(key, 321.0)  # the count starts afresh after a lockout


def test_failures_older_than_the_window_no_longer_count() -> None:
    """Failures spread wider than the window never add up to a lockout."""
    lockout = PasswordLockout(max_failures=3, window_s=60, lockout_s=300)
    key = ("MN-GUARDED", "192.0.2.7")
    assert not any(lockout.failed(key, t) for t in (0.0, 40.0, 80.0, 120.0, 160.0))
    assert lockout.failed(key, 170.0)  # 120, 160, 170 within a minute
    assert lockout.locked(key, 171.0)


def test_the_pairs_remembered_are_bounded() -> None:
    """Past `max_tracked` pairs, spent ones go first, then the least recently failed; memory stays bounded."""
    lockout = PasswordLockout(max_failures=2, window_s=10, lockout_s=100, max_tracked=100)
    locked = ("MN-GUARDED", "victim-net")
    lockout.failed(locked, 0.0)
    lockout.failed(locked, 0.0)
    for index in range(50):
        lockout.failed(("MN-GUARDED", f"old-{index}"), 0.0)
    for index in range(1000):
        lockout.failed(("MN-GUARDED", f"new-{index}"), 20.0)
        assert len(lockout) <= 100
    assert not lockout.locked(("MN-GUARDED", "old-1"), 20.0)


def test_impossible_lockout_settings_are_refused() -> None:
    """Zero failures, windows or lockouts are configuration errors."""
    with pytest.raises(ValueError, match="positive"):
        PasswordLockout(max_failures=0, window_s=60, lockout_s=60)
    for key in ("password_failure_window", "password_lockout", "idle_timeout"):
        with pytest.raises(ValueError, match=key):
            HJ212GatewayConfig.model_validate({key: "PT0S"})
    with pytest.raises(ValueError, match="max_connections_per_peer"):
        HJ212GatewayConfig.model_validate({"max_connections_per_peer": 0})


def test_the_documented_defaults() -> None:
    """Defaults: 8 connections per peer, 5 wrong passwords in 10 minutes lock out for 15, 4 KiB of garbage a connection."""
    config = HJ212GatewayConfig()
    assert config.max_connections_per_peer == 8
    assert config.max_password_failures == 5
    assert config.password_failure_window.total_seconds() == 600
    assert config.password_lockout.total_seconds() == 900
    assert config.max_garbage_bytes == 4096


# --- admission -----------------------------------------------------------------------------------------


def test_wrong_passwords_lock_out_their_mn_and_peer_only() -> None:
    """After N wrong passwords the pair's packets are refused, the right password too; other MNs and peers go on."""
    judge = admission()
    wrong = data_packet("MN-GUARDED", "guess", 1)
    right = data_packet("MN-GUARDED", "s3cret", 2)
    verdicts = [judge.judge(Frame(wrong), "192.0.2.7", float(t)) for t in range(3)]
    assert [v.outcome for v in verdicts] == ["wrong_password"] * 3
    assert [v.lockout_started for v in verdicts] == [False, False, True]
    assert all(parse_packet(v.answers[0]).field("QnRtn") == "3" for v in verdicts)  # still answered
    for packet in (wrong, right):
        refused = judge.judge(Frame(packet), "192.0.2.7", 10.0)
        assert (refused.outcome, refused.topic, refused.answers, refused.valid) == (
            PASSWORD_LOCKOUT,
            None,
            (),
            False,
        )
    elsewhere = judge.judge(Frame(right), "198.51.100.1", 10.0)
    assert (elsewhere.outcome, elsewhere.topic, elsewhere.valid) == ("ok", "hj212/MN-GUARDED", True)
    other_mn = judge.judge(Frame(data_packet("MN-OTHER", "0ther", 3)), "192.0.2.7", 10.0)
    assert (other_mn.outcome, parse_packet(other_mn.answers[0]).cn) == ("ok", "9014")
    after = judge.judge(Frame(right), "192.0.2.7", 400.0)
    assert (after.outcome, after.valid) == ("ok", True)


def test_stations_without_a_password_and_unknown_mns_never_lock_out() -> None:
    """Any PW is right for a station without one, and an unknown MN has none to guess."""
    judge = admission(max_password_failures=1)
    for index in range(5):
        assert judge.judge(Frame(data_packet("MN-OPEN", f"x{index}", index)), "p", 0.0).outcome == "ok"
        stranger = judge.judge(Frame(data_packet("MN-STRANGER", f"x{index}", index)), "p", 0.0)
        assert stranger.outcome == "unknown_mn"
    assert len(judge.lockout) == 0


def test_only_whole_valid_packets_are_valid() -> None:
    """Garbage, truncated, oversized and unparseable frames are not valid (no idle reset; garbage); parsed packets are."""
    judge = admission()
    good = data_packet("MN-OPEN", "x", 1)
    cases: dict[Event, tuple[str, str]] = {
        Garbage(b"noise"): ("unframed", "hj212/_unframed"),
        Frame(good[:70], "truncated"): ("truncated", "hj212/MN-OPEN"),
        Frame(good, "oversized"): ("oversized", "hj212/MN-OPEN"),
        Frame(good[:-6] + b"0000\r\n"): ("bad_crc", "hj212/MN-OPEN"),
    }
    for event, (outcome, topic) in cases.items():
        verdict = judge.judge(event, "p", 0.0)
        assert (verdict.outcome, verdict.topic, verdict.valid) == (outcome, topic, False)
    assert judge.judge(Frame(good), "p", 0.0).valid
    assert judge.judge(Frame(data_packet("MN-STRANGER", "x", 1)), "p", 0.0).valid


def test_a_time_request_with_a_huge_polid_is_answered_without_echoing_it() -> None:
    """A 1013 whose PolId would not fit a packet gets 9013 and a 1012 without it, never an exception."""
    judge = admission(max_segment_length=9999)
    request = encode_packet(
        qn="1", st="21", cn="1013", pw="s3cret", mn="MN-GUARDED", flag=5, cp=({"PolId": "w" * 9800},)
    )
    verdict = judge.judge(Frame(request), "p", 0.0)
    assert (verdict.outcome, verdict.error) == ("ok", None)
    notified, set_time = (parse_packet(answer, max_segment_length=9999) for answer in verdict.answers)
    assert (notified.cn, set_time.cn) == ("9013", "1012")
    assert set_time.field("PolId") is None
    assert set_time.field("SystemTime") == "20261125083015"


def test_a_bug_while_judging_costs_only_the_answer() -> None:
    """An exception other than RejectedPayload gives an internal_error verdict: handed off, unanswered, never raised."""

    class BrokenRegistry(Registry):
        def by_mn(self, mn: str) -> None:
            raise RuntimeError("registry on fire")

    config = HJ212GatewayConfig()
    lockout = PasswordLockout(max_failures=5, window_s=60, lockout_s=60)
    judge = Admission(config, BrokenRegistry([]), lockout, lambda: NOW)
    verdict = judge.judge(Frame(data_packet("MN-OPEN", "x", 1)), "p", 0.0)
    assert (verdict.outcome, verdict.topic, verdict.answers) == (INTERNAL_ERROR, "hj212/MN-OPEN", ())
    assert isinstance(verdict.error, RuntimeError)


def test_an_ancient_datatime_is_judged_like_any_other_packet() -> None:
    """DataTime=10000101000000 in real-time data without a QN: handed off as sent (too far off to shift) and answered 9014; its clock is set."""
    segment = "QN=1;ST=21;CN=2011;PW=x;MN=MN-OPEN;Flag=5;CP=&&DataTime=10000101000000;w01001-Rtd=7.5&&"
    verdict = admission().judge(Frame(frame(segment)), "p", 0.0)
    assert (verdict.outcome, verdict.topic, verdict.payload) == ("ok", "hj212/MN-OPEN", None)
    assert [parse_packet(answer).cn for answer in verdict.answers] == ["9014", "1012"]


# --- fuzzing: any bytes are judged, nothing raises, no bug is hit ---------------------------------

_PIECES = st.sampled_from(
    [
        *";,=&-#\r\n",
        "##",
        "&&",
        "CP=&&",
        "PolId=",
        "DataTime=10000101000000",
        "CN=1011",
        "CN=1013",
        "SystemTime=20261125083015",
        "CN=2011",
        "Flag=5",
        "PW=s3cret",
        "MN=MN-GUARDED",
        "9" * 300,
    ]
)


def _judge_all(judge: Admission, data: bytes) -> None:
    framer = Framer(judge_config_max())
    for event in [*framer.feed(data), *framer.close()]:
        verdict = judge.judge(event, "p", 0.0)
        assert verdict.error is None, verdict.error
        assert verdict.topic is None or verdict.topic.startswith("hj212/")


def judge_config_max() -> int:
    return HJ212GatewayConfig(max_segment_length=9999).max_packet_bytes


@given(st.binary(max_size=2000))
@FUZZ
def test_random_bytes_are_judged_without_error(data: bytes) -> None:
    """Random byte streams framed and judged give verdicts, never exceptions or internal errors."""
    _judge_all(admission(max_segment_length=9999), data)


@given(
    st.sampled_from(["2011", "1011", "1013", "1062", "9011", "9012", "9014", "2061"]),
    st.lists(st.one_of(_PIECES, st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E))), max_size=30),
    st.integers(0, 7),
)
@FUZZ
def test_well_framed_packets_with_random_fields_are_judged_without_error(
    cn: str, pieces: list[str], flag: int
) -> None:
    """Segments with a valid length and CRC and random fields (long PolIds, odd times) never hit a bug."""
    segment = f"QN=1;ST=21;CN={cn};PW=s3cret;MN=MN-GUARDED;Flag={flag};CP=&&{''.join(pieces)}&&"
    body = segment.encode("ascii")[:9999]
    packet = b"##%04d%b%04X\r\n" % (len(body), body, crc16_hj212(body))
    _judge_all(admission(max_segment_length=9999), packet)
