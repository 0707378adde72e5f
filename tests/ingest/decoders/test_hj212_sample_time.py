"""HJ 212 SampleTime through decode and validation: a sampled result repeated in every packet is one point."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from config.parameters import default_catalogue
from config.registry import Registry
from ingest.decoders.hj212 import HJ212Decoder, frame
from ingest.model import Reading
from ingest.validate import ValidationConfig, Validator
from tests.helpers import station

MN = "50010300000001"
SHANGHAI = ZoneInfo("Asia/Shanghai")
VALIDATOR = Validator(ValidationConfig(), Registry([station("s1", mn=MN)]), default_catalogue())


def _realtime(data_time: datetime, ph: float, sample_time: datetime) -> bytes:
    """A real-time packet: a fresh pH, and the CODMn analyser's last 4-hourly result with its SampleTime."""
    stamp, sampled = data_time.strftime("%Y%m%d%H%M%S"), sample_time.strftime("%Y%m%d%H%M%S")
    return frame(
        f"QN={stamp}000;ST=21;CN=2011;PW=123456;MN={MN};Flag=4;CP=&&DataTime={stamp};"
        f"w01001-Rtd={ph},w01001-Flag=N;w01019-Rtd=3.2,w01019-Flag=N,w01019-SampleTime={sampled}&&"
    )


def _readings(packet: bytes, now_ns: int) -> dict[str, Reading]:
    decoded = HJ212Decoder().decode(f"hj212/{MN}", packet)
    readings, rejections = VALIDATOR.validate_many(decoded.readings, {}, now_ns)
    assert rejections == []
    return {r.parameter: r for r in readings}


def test_a_repeated_sampled_result_is_the_same_point_in_every_packet() -> None:
    """Two real-time packets a minute apart repeat one CODMn result: same parameter, time and tags; the pH points differ."""
    sample_time = (datetime.now(SHANGHAI) - timedelta(hours=3)).replace(
        minute=0, second=0, microsecond=0, tzinfo=None
    )
    now_ns = int((sample_time.replace(tzinfo=SHANGHAI) + timedelta(hours=3)).timestamp() * 1e9)
    first = _readings(_realtime(sample_time + timedelta(hours=2), 7.6, sample_time), now_ns)
    second = _readings(_realtime(sample_time + timedelta(hours=2, minutes=1), 7.7, sample_time), now_ns)
    identity = ("parameter", "time_ns", "tags")
    assert [getattr(first["codmn"], key) for key in identity] == [
        getattr(second["codmn"], key) for key in identity
    ]
    assert first["codmn"].time == sample_time.replace(tzinfo=SHANGHAI)
    assert first["ph"].time_ns != second["ph"].time_ns


def test_without_sample_time_the_result_is_stamped_with_each_packet() -> None:
    """Without SampleTime the same result would be a new point per packet: the behaviour SampleTime fixes."""
    data_time = (datetime.now(SHANGHAI) - timedelta(hours=1)).replace(second=0, microsecond=0, tzinfo=None)
    now_ns = int((data_time.replace(tzinfo=SHANGHAI) + timedelta(hours=1)).timestamp() * 1e9)
    packets = [
        frame(
            f"ST=21;CN=2011;PW=123456;MN={MN};CP=&&DataTime={(data_time + timedelta(minutes=m)):%Y%m%d%H%M%S};"
            "w01019-Rtd=3.2&&"
        )
        for m in (0, 1)
    ]
    times = {_readings(packet, now_ns)["codmn"].time_ns for packet in packets}
    assert len(times) == 2
