"""A batch of raw-log records through the core, in whichever process runs it.

`process_batch(core, batch, now_ns)` reads each record back as a message, runs
`MessageProcessor.process` on it and encodes the good readings as one readings-log record. The
result of each message (`Processed`) is small enough to cross a pipe from a worker process.
Whatever one message raises stays with that message, as its dead letter (`internal_error`): a
raw record that cannot be read back, a core that raises, readings that cannot be encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

from ingest import internal_errors
from ingest.deadletter import DeadLetter
from ingest.errors import RejectReason
from ingest.model import Message, Reading
from ingest.processor.core import MessageProcessor, Outcome
from ingest.records import decode_message, encode_readings

# One message as processed, small enough to cross a pipe: (its readings record for the readings
# log, or None; how many readings it holds; its dead letters; its outcome label).
Processed = tuple[bytes | None, int, list[DeadLetter], str]


def process_batch(core: MessageProcessor, batch: Sequence[tuple[int, bytes]], now_ns: int) -> list[Processed]:
    """Decode, validate and encode a batch of raw-log records (in whichever process runs it).

    Whatever one message raises stays with that message: it becomes its dead letter.
    """
    out: list[Processed] = []
    for offset, record in batch:
        try:
            message = decode_message(record)
        except Exception as exc:  # a raw record we cannot even read back
            detail = internal_errors.report("raw_record", exc, offset=offset)
            out.append((None, 0, [internal_letter(readable(record), detail, offset)], "rejected"))
            continue
        try:
            outcome = core.process(message, now_ns, offset)
        except Exception as exc:
            detail = internal_errors.report("process", exc, topic=message.topic[:200], offset=offset)
            outcome = Outcome([], [internal_letter(message, detail, offset)])
        encoded = _encoded(outcome, message, offset) if outcome.readings else None
        out.append((encoded, len(outcome.readings), outcome.rejections, _outcome(outcome)))
    return out


def readable(record: bytes) -> Message:
    """The raw record as a message, or the whole record as the payload when it cannot be parsed."""
    try:
        return decode_message(record)
    except Exception:
        return Message(topic="", payload=record, received_ns=0)


def internal_letter(
    message: Message, detail: str, offset: int, station: str | None = None, parameter: str | None = None
) -> DeadLetter:
    """The dead letter of a message (or one of its readings) lost to a fault of ours."""
    return DeadLetter(
        received_ns=message.received_ns,
        topic=message.topic,
        payload=message.payload,
        reason=RejectReason.INTERNAL_ERROR,
        detail=detail,
        station_id=station,
        parameter=parameter,
        source_offset=offset,
    )


def _outcome(outcome: Outcome) -> str:
    if not outcome.rejections:
        return "accepted"
    return "partial" if outcome.readings else "rejected"


def _encoded(outcome: Outcome, message: Message, offset: int) -> bytes | None:
    """The readings record of the outcome's readings; those that cannot be encoded become letters."""
    try:
        return encode_readings(outcome.readings)
    except Exception as exc:
        internal_errors.report("encode", exc, topic=message.topic[:200], offset=offset)
    good: list[Reading] = []
    for reading in outcome.readings:
        try:
            encode_readings([reading])
        except Exception as exc:
            detail = internal_errors.describe(exc)
            dead = internal_letter(message, detail, offset, reading.station_id, reading.parameter)
            outcome.rejections.append(dead)
        else:
            good.append(reading)
    outcome.readings = good
    return encode_readings(good) if good else None
