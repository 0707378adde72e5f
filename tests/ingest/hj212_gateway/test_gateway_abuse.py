"""Abusive peers over real loopback sockets: connection floods, garbage trickles, garbage between good packets, password guessing.

Every peer here is 127.0.0.1 (the tests talk to nothing else), so "another peer" is covered in
test_gateway_limits.py, where peers are plain keys.
"""

from __future__ import annotations

import threading

from structlog.testing import capture_logs

from config.registry import Registry, Station
from ingest.decoders.hj212 import frame
from tests.helpers import station, wait_for
from tests.ingest.hj212_gateway.gateway_support import (
    Logger,
    MemoryHandoff,
    closes,
    data_packet,
    metric,
    qn_of,
    running_gateway,
)

STATIONS = [
    station("guarded", mn="MN-GUARDED", hj212_password="s3cret"),
    station("other", mn="MN-OTHER", hj212_password="0ther"),
    station("open", mn="MN-OPEN"),
]
REGISTRY = Registry(STATIONS)
# Long enough that a test never trips it by accident, short enough to see when nothing comes.
QUIET_S = 0.3


def refused(reason: str) -> float:
    return metric("ecowatch_hj212_connections_refused_total", reason=reason)


def test_one_address_gets_no_more_than_its_connections_and_a_logger_gets_back_in_once_one_frees() -> None:
    """Past `max_connections_per_peer` from one address, connections close at once (logged once); those open keep working."""
    before = refused("max_connections_per_peer")
    with (
        capture_logs() as logs,
        running_gateway(MemoryHandoff(), REGISTRY, max_connections_per_peer=3) as gateway,
    ):
        held = [Logger(gateway.port) for _ in range(3)]
        wait_for(lambda: gateway.connections == 3, "three connections")
        flood = [Logger(gateway.port) for _ in range(10)]
        for extra in flood:
            extra.wait_closed()
            extra.close()
        wait_for(lambda: refused("max_connections_per_peer") == before + 10, "ten refusals counted")
        assert gateway.connections == 3
        for index, logger in enumerate(held):
            logger.send(data_packet("MN-OPEN", "x", index))
            assert logger.read_packets(1)[0].cn == "9014"
        held.pop().close()
        wait_for(lambda: gateway.connections == 2, "a slot to free")
        newcomer = Logger(gateway.port)
        newcomer.send(data_packet("MN-OPEN", "x", 9))
        assert newcomer.read_packets(1)[0].cn == "9014"
        for logger in [*held, newcomer]:
            logger.close()
    refusals = [e for e in logs if e["event"] == "hj212_connection_refused"]
    assert [(e["reason"], e["log_level"]) for e in refusals] == [("max_connections_per_peer", "warning")]


def test_a_garbage_trickle_is_cut_by_the_idle_timer_though_bytes_keep_coming() -> None:
    """One byte of garbage every 100 ms never makes the connection idle for bytes, but only valid packets reset the timer."""
    before = closes("idle_timeout")
    stop = threading.Event()
    sent = []
    with running_gateway(MemoryHandoff(), REGISTRY, idle_timeout=0.8, max_garbage_bytes=4096) as gateway:
        logger = Logger(gateway.port)

        def trickle() -> None:
            while not stop.wait(0.1):
                try:
                    logger.send(b"x")
                except OSError:
                    return
                sent.append(1)

        trickler = threading.Thread(target=trickle)
        trickler.start()
        try:
            logger.wait_closed()
        finally:
            stop.set()
            trickler.join()
        wait_for(lambda: closes("idle_timeout") == before + 1, "the idle close to be counted")
    assert len(sent) >= 3  # bytes kept arriving, far below the garbage allowance


def test_valid_packets_keep_a_connection_open_past_the_idle_timeout() -> None:
    """A logger sending a packet more often than `idle_timeout` is never cut, however long it stays."""
    before = closes("idle_timeout")
    stop = threading.Event()
    with running_gateway(MemoryHandoff(), REGISTRY, idle_timeout=1.0) as gateway:
        logger = Logger(gateway.port)
        for index in range(15):  # 3 s: three idle timeouts
            logger.send(data_packet("MN-OPEN", "x", index))
            assert logger.read_packets(1)[0].cn == "9014"
            stop.wait(0.2)
        logger.close()
    assert closes("idle_timeout") == before


def test_garbage_between_good_packets_still_uses_up_the_allowance() -> None:
    """The garbage allowance is for the connection's life: good packets in between do not renew it."""
    before = closes("garbage")
    handoff = MemoryHandoff()
    with running_gateway(handoff, REGISTRY, max_garbage_bytes=300) as gateway:
        logger = Logger(gateway.port)
        answered = 0
        try:
            for index in range(10):
                logger.send(b"z" * 100 + data_packet("MN-OPEN", "x", index))
                logger.read_packets(1)
                answered += 1
        except (AssertionError, OSError):
            pass
        logger.wait_closed()
        wait_for(lambda: closes("garbage") == before + 1, "the garbage close to be counted")
    # 300 bytes of garbage are allowed; the fourth 100 go over, and the packet that came in the
    # same read may still be answered before the close.
    assert answered in (3, 4)
    assert sum(1 for topic in handoff.topics() if topic == "hj212/_unframed") == 4


def test_broken_packets_count_as_garbage_and_do_not_reset_the_idle_timer() -> None:
    """Well-framed packets with a bad CRC are garbage: they use the allowance and keep nothing open."""
    before = closes("idle_timeout")
    bad = data_packet("MN-OPEN", "x", 1)[:-6] + b"0000\r\n"
    stop = threading.Event()
    with running_gateway(MemoryHandoff(), REGISTRY, idle_timeout=0.5, max_garbage_bytes=100_000) as gateway:
        logger = Logger(gateway.port)

        def resend() -> None:
            while not stop.wait(0.1):
                try:
                    logger.send(bad)
                except OSError:
                    return

        sender = threading.Thread(target=resend)
        sender.start()
        try:
            logger.wait_closed()
        finally:
            stop.set()
            sender.join()
        wait_for(lambda: closes("idle_timeout") == before + 1, "the idle close to be counted")


def test_password_guessing_locks_out_that_mn_from_that_address() -> None:
    """N wrong passwords lock the MN out for this peer: later packets, the right password too, are neither handed off nor answered; other MNs go on."""
    lockouts = metric("ecowatch_hj212_password_lockouts_total")
    refusals = metric("ecowatch_hj212_packets_refused_total", reason="password_lockout")
    handoff = MemoryHandoff()
    guesses = [data_packet("MN-GUARDED", f"guess{n}", n) for n in range(5)]
    right = data_packet("MN-GUARDED", "s3cret", 10)
    with (
        capture_logs() as logs,
        running_gateway(
            handoff, REGISTRY, max_password_failures=3, password_failure_window=60, password_lockout=600
        ) as gateway,
    ):
        guesser = Logger(gateway.port)
        for guess in guesses[:3]:
            guesser.send(guess)
            answer = guesser.read_packets(1)[0]
            assert (answer.cn, answer.field("QnRtn"), answer.qn) == ("9011", "3", qn_of(guess))
        wait_for(lambda: metric("ecowatch_hj212_password_lockouts_total") == lockouts + 1, "the lockout")
        guesser.send(guesses[3] + guesses[4] + right)
        other = data_packet("MN-OTHER", "0ther", 11)
        guesser.send(other)  # another MN from the same address: served, after the refused ones
        answer = guesser.read_packets(1)[0]
        assert (answer.cn, answer.qn) == ("9014", qn_of(other))
        assert guesser.nothing_sent_within(QUIET_S)
        guesser.close()
        again = Logger(gateway.port)  # reconnecting does not end the lockout
        again.send(right)
        assert again.nothing_sent_within(QUIET_S)
        again.close()
    assert metric("ecowatch_hj212_packets_refused_total", reason="password_lockout") == refusals + 4
    assert [payload for _, payload in handoff.messages] == [*guesses[:3], other]
    lockout_logs = [e for e in logs if e["event"] == "hj212_password_lockout"]
    assert len(lockout_logs) == 1
    assert (lockout_logs[0]["mn"], lockout_logs[0]["peer"], lockout_logs[0]["failures"]) == (
        "MN-GUARDED",
        "127.0.0.1",
        3,
    )
    assert not any(secret in str(logs) for secret in ("s3cret", "guess0", "guess3", "0ther"))


def test_an_ancient_datatime_through_the_gateway_breaks_nothing() -> None:
    """`DataTime=10000101000000` is handed off as sent (too far off to shift; validation judges times) and answered; its clock is set; the connection goes on."""
    segment = "QN=10000101000000000;ST=21;CN=2011;PW=x;MN=MN-OPEN;Flag=5;CP=&&DataTime=10000101000000;w01001-Rtd=7.5&&"
    ancient = frame(segment)
    handoff = MemoryHandoff()
    with running_gateway(handoff, REGISTRY) as gateway:
        logger = Logger(gateway.port)
        logger.send(ancient + data_packet("MN-OPEN", "x", 1))
        answers = logger.read_packets(3)
        assert [a.cn for a in answers] == ["9014", "1012", "9014"]
        logger.close()
    assert handoff.messages[0] == ("hj212/MN-OPEN", ancient)


def test_a_bug_judging_packets_costs_their_answers_not_the_connection() -> None:
    """An unexpected exception is counted as an internal error; the packet is still handed off and the connection serves on."""

    class FlakyRegistry(Registry):
        def by_mn(self, mn: str) -> Station | None:
            if mn == "MN-BUG":
                raise RuntimeError("registry on fire")
            return super().by_mn(mn)

    stage = {"stage": "hj212_gateway_packet", "exception": "RuntimeError"}
    before = metric("ecowatch_internal_errors_total", **stage)
    handoff = MemoryHandoff()
    buggy, good = data_packet("MN-BUG", "x", 1), data_packet("MN-OPEN", "x", 2)
    with running_gateway(handoff, FlakyRegistry(STATIONS)) as gateway:
        logger = Logger(gateway.port)
        logger.send(buggy + good)
        [answer] = logger.read_packets(1)
        assert answer.qn == qn_of(good)
        logger.close()
    assert handoff.messages == [("hj212/MN-BUG", buggy), ("hj212/MN-OPEN", good)]
    assert metric("ecowatch_internal_errors_total", **stage) == before + 1
