"""Builders shared by the simulator tests."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from simulators.simulator import SimMessage

# A summer morning: warm water, where DO saturation is lowest and the class limits bite hardest.
T0 = datetime(2026, 7, 1, tzinfo=UTC)


class CollectingPublisher:
    """A publisher that keeps what it is given, to assert on."""

    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0
        self.messages: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self.sent += 1

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass


def readings_of(message: SimMessage) -> dict[str, float]:
    """Values of a JSON message by code, flags dropped."""
    raw = orjson.loads(message.payload)["readings"]
    return {code: v if isinstance(v, float | int) else v["value"] for code, v in raw.items()}


def flags_of(message: SimMessage) -> dict[str, str]:
    """Flags of a JSON message by code (N for bare numbers)."""
    raw = orjson.loads(message.payload)["readings"]
    return {code: "N" if isinstance(v, float | int) else v["flag"] for code, v in raw.items()}
