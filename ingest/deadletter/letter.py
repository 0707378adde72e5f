"""One rejection as the stages hand it to the store and as the store gives it back."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.errors import RejectReason


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message, or one rejected reading of it (then `station_id` and `parameter` say which).

    The letters of one message share its `payload` (and `source_offset`, the raw-log offset, when
    it came from the raw log). Read back, `message_id` names the stored message and `omitted`
    counts the rejections of that message that were counted but not stored as rows.
    """

    received_ns: int
    topic: str
    payload: bytes
    reason: RejectReason | str
    detail: str
    format: str | None = None
    station_id: str | None = None
    parameter: str | None = None
    source_offset: int | None = None
    id: int | None = None
    replayed_ns: int | None = None
    message_id: int | None = None
    omitted: int = 0

    def to_json(self, *, with_payload: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "received_ns": self.received_ns,
            "topic": self.topic,
            "format": self.format,
            "reason": str(self.reason),
            "detail": self.detail,
            "station_id": self.station_id,
            "parameter": self.parameter,
            "replayed_ns": self.replayed_ns,
            "message_id": self.message_id,
            "source_offset": self.source_offset,
            "omitted": self.omitted,
        }
        if with_payload:
            try:
                out["payload"] = self.payload.decode("utf-8")
            except UnicodeDecodeError:
                out["payload_hex"] = self.payload.hex()
        return out
