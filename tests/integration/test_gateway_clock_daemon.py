"""A data logger whose clock drifts, over real TCP to the gateway inside `ecowatch run`: set, and its data stored."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.app.daemon import Daemon
from ingest.decoders.hj212 import encode_data_packet, encode_packet
from tests.helpers import wait_for
from tests.ingest.hj212_gateway.gateway_support import Logger
from tests.integration.test_gateway_in_daemon import MN, PASSWORD, gateway_settings
from tests.servers import MosquittoServer

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
STATION = "cq-cj-cuntan"  # MN's station in the demo registry
# Far past validation's 5-minute future skew: without the gateway these readings would be refused.
DRIFT = timedelta(minutes=20)


class LoggerClock:
    """The logger's own clock: the wall clock in Beijing (naive, as HJ 212 writes it) plus an error."""

    def __init__(self, error: timedelta) -> None:
        self.error = error

    def now(self) -> datetime:
        return datetime.now(SHANGHAI).replace(tzinfo=None) + self.error

    def set(self, system_time: str) -> None:
        """Take the platform's SystemTime (1012) as the time now, as a logger does."""
        now = datetime.now(SHANGHAI).replace(tzinfo=None)
        self.error = datetime.strptime(system_time, "%Y%m%d%H%M%S") - now


def _realtime(clock: LoggerClock, ph: float, later: timedelta = timedelta(0)) -> tuple[datetime, bytes]:
    """Real-time data stamped by the logger's clock (DataTime and QN) `later` than now, asking for an answer."""
    now = (clock.now() + later).replace(microsecond=0)
    packet = encode_data_packet(
        MN,
        PASSWORD,
        "2011",
        now,
        {"ph": (ph, "N"), "do": (8.0, "N")},
        qn=now.strftime("%Y%m%d%H%M%S") + "000",
        want_response=True,
    )
    return now, packet


def test_a_drifting_logger_is_set_and_its_readings_are_stored_at_the_right_time(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    """20 min ahead: 9014 then 1012; the logger answers 9011 and 9012 (read by the gateway, never dead-lettered); its
    readings before the correction are stored shifted back to the platform's time and marked time-corrected, those
    after it as sent and unmarked."""
    daemon = Daemon(gateway_settings(tmp_path, mosquitto))
    daemon.start()
    try:
        assert daemon.gateway is not None
        clock = LoggerClock(DRIFT)
        logger = Logger(daemon.gateway.port)
        sent_ahead, ahead = _realtime(clock, 7.1)
        logger.send(ahead)
        data_response, set_time = logger.read_packets(2)
        assert (data_response.cn, set_time.cn) == ("9014", "1012")
        system_time = set_time.field("SystemTime")
        assert system_time is not None
        clock.set(system_time)
        for cn, key in (("9011", "QnRtn"), ("9012", "ExeRtn")):
            logger.send(
                encode_packet(qn=set_time.qn, st="91", cn=cn, pw=PASSWORD, mn=MN, flag=4, cp=({key: "1"},))
            )
        # The next reading's time, 5 s on: within the same second as the shifted first one, the
        # two would be one point (same series and time) and the later would overwrite it.
        sent_right, right = _realtime(clock, 7.2, later=timedelta(seconds=5))
        logger.send(right)
        assert [p.cn for p in logger.read_packets(1)] == ["9014"]  # nothing more to correct
        logger.close()
        wait_for(lambda: daemon.stats()["sinks"]["sqlite"]["committed"] == 2, "both packets stored")
        stored = daemon.runners[0].sink.query(STATION, "ph", None, None, 10)  # type: ignore[attr-defined]
        by_value = {round(r.value, 3): r.time for r in stored}
        assert sorted(by_value) == [7.1, 7.2]
        # Shifted by the error the gateway measured: the drift, less transit and the fraction of a second
        # the QN (written to whole seconds here) leaves out.
        shifted = by_value[7.1] - (sent_ahead - DRIFT).replace(tzinfo=SHANGHAI)
        assert timedelta(seconds=-2) <= shifted <= timedelta(seconds=2)
        assert by_value[7.2] == sent_right.replace(tzinfo=SHANGHAI)
        # Read back from the SQLite store: the shifted packet's readings (pH and DO) are marked, the later ones not.
        stored_do = daemon.runners[0].sink.query(STATION, "do", None, None, 10)  # type: ignore[attr-defined]
        marks = {(r.parameter, r.time): r.time_corrected for r in [*stored, *stored_do]}
        assert marks == {
            ("ph", by_value[7.1]): True,
            ("do", by_value[7.1]): True,
            ("ph", by_value[7.2]): False,
            ("do", by_value[7.2]): False,
        }
        # No clock_skew, and the logger's 9011 and 9012 stayed in the gateway.
        assert daemon.deadletters.count() == 0
    finally:
        daemon.stop()
