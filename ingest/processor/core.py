"""The processor's pure core: one raw message in, readings and dead letters out.

`MessageProcessor.process(message, now_ns)` picks the subscription whose topic template matches
(`Route`), refuses what the template or the size limit refuses, decodes with that subscription's
format and validates every raw reading. It does no I/O and never reads the clock (`now_ns` is
given), so it runs the same in the daemon's worker processes, in tests and under the fuzzer.
Whatever a decoder or the validator raises becomes a dead letter with reason `internal_error`
(`ingest.internal_errors`); a validator that raises on a whole message is retried reading by
reading, so only the reading that raised is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest import internal_errors
from ingest.deadletter import DeadLetter
from ingest.decoders import Decoder
from ingest.errors import RejectedPayload, RejectReason
from ingest.model import ItemRejection, Message, RawReading, Reading
from ingest.topics import TopicTemplate
from ingest.validate import Validator

# Topic -> route lookups are cached; bounded so a flood of distinct topics cannot grow memory:
# at most this many entries, of topics at most `_ROUTE_CACHE_TOPIC_BYTES` long (an MQTT topic may
# be 64 KiB: 100 000 of those would be 6 GiB per worker). Longer topics are matched each time.
_ROUTE_CACHE_LIMIT = 100_000
_ROUTE_CACHE_TOPIC_BYTES = 256


@dataclass(frozen=True, slots=True)
class Route:
    template: TopicTemplate
    format: str
    decoder: Decoder


@dataclass(slots=True)
class Outcome:
    readings: list[Reading]
    rejections: list[DeadLetter]


class MessageProcessor:
    """Pure-ish core: one message in, readings and dead letters out (no I/O)."""

    def __init__(self, routes: Sequence[Route], validator: Validator, max_payload_bytes: int) -> None:
        self._routes = list(routes)
        self._validator = validator
        self._max_payload = max_payload_bytes
        self._route_cache: dict[str, tuple[Route, dict[str, str]] | None] = {}

    def route(self, topic: str) -> tuple[Route, dict[str, str]] | None:
        cached = self._route_cache.get(topic, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        found: tuple[Route, dict[str, str]] | None = None
        for route in self._routes:
            tags = route.template.match(topic)
            if tags is not None:
                found = (route, tags)
                break
        if len(topic) > _ROUTE_CACHE_TOPIC_BYTES:
            return found
        if len(self._route_cache) >= _ROUTE_CACHE_LIMIT:
            self._route_cache.clear()
        self._route_cache[topic] = found
        return found

    def process(self, message: Message, now_ns: int, offset: int | None = None) -> Outcome:
        def letter(
            reason: RejectReason,
            detail: str,
            fmt: str | None,
            station: str | None = None,
            parameter: str | None = None,
        ) -> DeadLetter:
            return DeadLetter(
                received_ns=message.received_ns,
                topic=message.topic,
                payload=message.payload[: self._max_payload],
                reason=reason,
                detail=detail,
                format=fmt,
                station_id=station,
                parameter=parameter,
                source_offset=offset,
            )

        routed = self.route(message.topic)
        if routed is None:
            return Outcome(
                [], [letter(RejectReason.BAD_TOPIC, "topic matches no subscription template", None)]
            )
        route, topic_tags = routed
        refused = route.template.disallowed(topic_tags)
        if refused is not None:
            return Outcome([], [letter(RejectReason.BAD_TOPIC, refused, route.format)])
        if len(message.payload) > self._max_payload:
            detail = f"{len(message.payload)} bytes exceed max_payload_bytes={self._max_payload}"
            return Outcome([], [letter(RejectReason.TOO_LARGE, detail, route.format)])
        try:
            decoded = route.decoder.decode(message.topic, message.payload)
        except RejectedPayload as exc:
            return Outcome([], [letter(exc.reason, exc.detail, route.format)])
        except Exception as exc:
            detail = internal_errors.report("decode", exc, topic=message.topic[:200], offset=offset)
            return Outcome([], [letter(RejectReason.INTERNAL_ERROR, detail, route.format)])
        try:
            readings, invalid = self._validator.validate_many(decoded.readings, topic_tags, now_ns)
        except Exception:
            readings, invalid = self._validate_each(decoded.readings, topic_tags, now_ns, offset)
        rejections = [
            letter(r.reason, r.detail, route.format, r.station_id, r.parameter)
            for r in (*decoded.rejections, *invalid)
        ]
        return Outcome(readings, rejections)

    def _validate_each(
        self, raws: Sequence[RawReading], topic_tags: dict[str, str], now_ns: int, offset: int | None
    ) -> tuple[list[Reading], list[ItemRejection]]:
        """Validate a message's readings one by one, so one that raises is the only one lost."""
        readings: list[Reading] = []
        rejections: list[ItemRejection] = []
        for raw in raws:
            try:
                checked = self._validator.validate(raw, topic_tags, now_ns)
            except Exception as exc:
                detail = internal_errors.report(
                    "validate", exc, parameter=str(raw.parameter)[:40], offset=offset
                )
                checked = ItemRejection(RejectReason.INTERNAL_ERROR, detail, None, str(raw.parameter)[:32])
            (readings if isinstance(checked, Reading) else rejections).append(checked)  # type: ignore[arg-type]
        return readings, rejections
