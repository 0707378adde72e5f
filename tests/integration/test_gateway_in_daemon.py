"""The HJ 212 gateway inside `ecowatch run`: packets go straight into the raw log, 9014 once durable."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from config.registry import Registry
from ingest.decoders.hj212 import encode_data_packet, parse_packet
from ingest.service import Daemon
from ingest.settings import DEMO_REGISTRY, load_settings
from tests.helpers import wait_for
from tests.servers import MosquittoServer

pytestmark = pytest.mark.integration

MN = "50000000000003"  # cq-cj-cuntan in the demo registry
PASSWORD = "852963"


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_loggers_are_answered_after_the_log_holds_their_packets(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    """Good packets are stored and answered with 9014 echoing QN; wrong passwords and bad CRCs are dead-lettered."""
    document = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    for entry in document["stations"]:
        if entry["mn"] == MN:
            entry["hj212_password"] = PASSWORD
    registry_file = tmp_path / "stations.yaml"
    registry_file.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    assert Registry.load(registry_file).by_mn(MN).hj212_password is not None  # type: ignore[union-attr]
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        registry=registry_file,
        mqtt={"port": mosquitto.port, "client_id": "gw-daemon"},
        http={"port": 0},
        hj212_gateway={"port": 0},
    )
    daemon = Daemon(settings)
    daemon.start()
    try:
        assert daemon.gateway is not None
        start = datetime(2026, 11, 24, 8, 0)
        with socket.create_connection(("127.0.0.1", daemon.gateway.port), timeout=10) as sock:
            for hour in range(5):
                qn = f"20261124{hour:02d}0000000"
                packet = encode_data_packet(
                    MN,
                    PASSWORD,
                    "2061",
                    start + timedelta(hours=hour),
                    {"nh3n": (0.4 + hour / 10, "N"), "do": (7.5, "N")},
                    qn=qn,
                    want_response=True,
                )
                sock.sendall(packet)
                answer = parse_packet(_read_line(sock))
                assert (answer.cn, answer.qn, answer.mn) == ("9014", qn, MN)
            wrong = encode_data_packet(MN, "000000", "2061", start, {"ph": (7.0, "N")}, want_response=True)
            sock.sendall(wrong)
            assert parse_packet(_read_line(sock)).cn == "9011"  # QnRtn=3: password error
            corrupt = encode_data_packet(MN, PASSWORD, "2011", start, {"ph": (7.0, "N")}).replace(
                b"7.0", b"7.5"
            )
            sock.sendall(corrupt)
        wait_for(
            lambda: daemon.deadletters.count() >= 2 and daemon.stats()["sinks"]["sqlite"]["committed"] == 5,
            "readings stored and bad packets dead-lettered",
        )
        stored = daemon.runners[0].sink.query("cq-cj-cuntan", "nh3n", None, None, 100)  # type: ignore[attr-defined]
        assert sorted(round(r.value, 3) for r in stored) == [0.4, 0.5, 0.6, 0.7, 0.8]
        assert sorted(str(d.reason) for d in daemon.deadletters.list()) == ["bad_crc", "wrong_password"]
    finally:
        daemon.stop()
