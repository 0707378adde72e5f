"""The processor core: routing by topic template, decoding by format, validation, dead letters."""

from __future__ import annotations

import orjson

from config.parameters import default_catalogue
from ingest.decoders import DECODERS
from ingest.errors import RejectReason
from ingest.model import Message
from ingest.processor import MessageProcessor, Route
from ingest.topics import TopicTemplate
from ingest.validate import ValidationConfig, Validator
from tests.helpers import T0, T0_NS, registry, station

CORE = MessageProcessor(
    [
        Route(TopicTemplate.parse("ecowatch/v1/{district}/{station_id}/{kind}"), "json", DECODERS["json"]()),
        Route(TopicTemplate.parse("ecowatch/senml/{station_id}"), "senml", DECODERS["senml"]()),
    ],
    Validator(ValidationConfig(), registry(station("st-1")), default_catalogue()),
    max_payload_bytes=1000,
)


def message(topic: str, payload: bytes) -> Message:
    return Message(topic=topic, payload=payload, received_ns=T0_NS)


def doc(**readings: object) -> bytes:
    return orjson.dumps({"station_id": "st-1", "ts": T0.isoformat(), "readings": readings})


def test_good_readings_pass_and_carry_topic_tags() -> None:
    """A valid message yields readings tagged with the topic's extra placeholders."""
    outcome = CORE.process(message("ecowatch/v1/Yuzhong/st-1/water", doc(ph=7.1, do=8.0)), T0_NS, offset=3)
    assert outcome.rejections == []
    assert {r.parameter for r in outcome.readings} == {"ph", "do"}
    assert dict(outcome.readings[0].tags)["kind"] == "water"


def test_partly_valid_messages_split_into_readings_and_dead_letters() -> None:
    """Good readings go on; each bad one is a dead letter with the raw payload and its offset."""
    payload = doc(ph=7.1, do=-3.0, zz=1.0)
    outcome = CORE.process(message("ecowatch/v1/Yuzhong/st-1/water", payload), T0_NS, offset=9)
    assert [r.parameter for r in outcome.readings] == ["ph"]
    assert sorted((d.reason, d.parameter) for d in outcome.rejections) == [
        (RejectReason.OUT_OF_RANGE, "do"),
        (RejectReason.UNKNOWN_PARAMETER, "zz"),
    ]
    assert all(
        d.payload == payload and d.source_offset == 9 and d.format == "json" for d in outcome.rejections
    )


def test_the_route_picks_the_decoder() -> None:
    """A SenML topic is decoded as SenML."""
    senml = orjson.dumps([{"bn": "st-1/", "bt": T0.timestamp(), "n": "ph", "v": 7.3}])
    outcome = CORE.process(message("ecowatch/senml/st-1", senml), T0_NS)
    assert [(r.parameter, r.value) for r in outcome.readings] == [("ph", 7.3)]


def test_unroutable_oversized_and_undecodable_messages_are_rejected_whole() -> None:
    """No template, too many bytes, or no usable content: one dead letter each, with the reason."""
    cases = [
        (message("elsewhere/st-1", doc(ph=7.0)), RejectReason.BAD_TOPIC),
        (message("ecowatch/v1/Yuzhong/st-1/water", b"x" * 1001), RejectReason.TOO_LARGE),
        (message("ecowatch/v1/Yuzhong/st-1/water", b"\xff\xfe"), RejectReason.MALFORMED),
    ]
    for msg, reason in cases:
        outcome = CORE.process(msg, T0_NS)
        assert outcome.readings == []
        assert [d.reason for d in outcome.rejections] == [reason]
        assert len(outcome.rejections[0].payload) <= 1000
