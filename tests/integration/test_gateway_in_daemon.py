"""The HJ 212 gateway inside `ecowatch run`: packets go straight into the raw log, 9014 once durable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from config.registry import Registry
from ingest.app.daemon import Daemon
from ingest.app.settings import DEMO_REGISTRY, Settings, load_settings
from ingest.decoders.hj212 import encode_data_packet, frame
from tests.helpers import wait_for
from tests.ingest.hj212_gateway.gateway_support import Logger
from tests.servers import MosquittoServer

pytestmark = pytest.mark.integration

MN = "50000000000003"  # cq-cj-cuntan in the demo registry
PASSWORD = "852963"


def _yesterday_8am() -> datetime:
    """08:00 yesterday in Beijing, naive as DataTime is: recent whatever today's date."""
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    return datetime.combine(today - timedelta(days=1), datetime.min.time()).replace(hour=8)


def gateway_settings(tmp_path: Path, mosquitto: MosquittoServer) -> Settings:
    """The demo registry with a password for MN, the gateway on a free port."""
    document = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    for entry in document["stations"]:
        if entry["mn"] == MN:
            entry["hj212_password"] = PASSWORD
    registry_file = tmp_path / "stations.yaml"
    registry_file.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    assert Registry.load(registry_file).by_mn(MN).hj212_password is not None  # type: ignore[union-attr]
    return load_settings(
        None,
        data_dir=tmp_path / "data",
        registry=registry_file,
        mqtt={"port": mosquitto.port, "client_id": "gw-daemon"},
        http={"port": 0},
        hj212_gateway={"port": 0},
    )


def _upload(hour: int, start: datetime) -> tuple[str, bytes]:
    """Hourly data for `start` + `hour` (a backlog), asking for an answer: its QN and the packet.

    QN is the logger's clock when it sends, right here (the wall clock in Beijing): the gateway
    finds nothing to correct.
    """
    data_time = start + timedelta(hours=hour)
    qn = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d%H%M%S") + f"{hour:03d}"
    packet = encode_data_packet(
        MN,
        PASSWORD,
        "2061",
        data_time,
        {"nh3n": (0.4 + hour / 10, "N"), "do": (7.5, "N")},
        qn=qn,
        want_response=True,
    )
    return qn, packet


def test_loggers_are_answered_after_the_log_holds_their_packets(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    """Good packets are stored and answered with 9014 echoing QN; wrong passwords and bad CRCs are dead-lettered."""
    daemon = Daemon(gateway_settings(tmp_path, mosquitto))
    daemon.start()
    try:
        assert daemon.gateway is not None
        start = _yesterday_8am()
        logger = Logger(daemon.gateway.port)
        for hour in range(5):
            qn, packet = _upload(hour, start)
            logger.send(packet)
            [answer] = logger.read_packets(1)
            assert (answer.cn, answer.qn, answer.mn) == ("9014", qn, MN)
        wrong = encode_data_packet(MN, "000000", "2061", start, {"ph": (7.0, "N")}, want_response=True)
        logger.send(wrong)
        assert logger.read_packets(1)[0].cn == "9011"  # QnRtn=3: password error
        corrupt = encode_data_packet(MN, PASSWORD, "2011", start, {"ph": (7.0, "N")}).replace(b"7.0", b"7.5")
        logger.send(corrupt)
        logger.close()
        wait_for(
            lambda: daemon.deadletters.count() >= 2 and daemon.stats()["sinks"]["sqlite"]["committed"] == 5,
            "readings stored and bad packets dead-lettered",
        )
        stored = daemon.runners[0].sink.query("cq-cj-cuntan", "nh3n", None, None, 100)  # type: ignore[attr-defined]
        assert sorted(round(r.value, 3) for r in stored) == [0.4, 0.5, 0.6, 0.7, 0.8]
        assert sorted(str(d.reason) for d in daemon.deadletters.list()) == ["bad_crc", "wrong_password"]
    finally:
        daemon.stop()


def test_a_packet_dated_in_the_year_1000_is_dead_lettered_and_stops_nothing(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    """Issue 13: `DataTime=10000101000000` from a logger whose MN has no password, between good packets: all good ones are stored."""
    settings = gateway_settings(tmp_path, mosquitto)
    daemon = Daemon(settings)
    daemon.start()
    try:
        assert daemon.gateway is not None
        start = _yesterday_8am()
        open_mn = "50000000000001"  # a demo station without a password: any PW is right
        assert daemon.registry.by_mn(open_mn) is not None
        ancient = frame(
            f"QN=10000101000000000;ST=21;CN=2061;PW=x;MN={open_mn};Flag=5;"
            "CP=&&DataTime=10000101000000;w21003-Avg=0.5,w21003-Flag=N&&"
        )
        logger = Logger(daemon.gateway.port)
        for hour in range(4):
            if hour == 2:
                logger.send(ancient)
                # The gateway does not judge times, but it sets a clock that reads the year 1000.
                assert [p.cn for p in logger.read_packets(2)] == ["9014", "1012"]
            qn, packet = _upload(hour, start)
            logger.send(packet)
            assert logger.read_packets(1)[0].qn == qn
        logger.close()
        wait_for(
            lambda: daemon.deadletters.count() >= 1 and daemon.stats()["sinks"]["sqlite"]["committed"] == 4,
            "the good readings stored and the ancient one dead-lettered",
        )
        stored = daemon.runners[0].sink.query("cq-cj-cuntan", "nh3n", None, None, 100)  # type: ignore[attr-defined]
        assert sorted(round(r.value, 3) for r in stored) == [0.4, 0.5, 0.6, 0.7]
        [letter] = daemon.deadletters.list()
        assert str(letter.reason) in ("time_out_of_range", "too_old")
    finally:
        daemon.stop()
