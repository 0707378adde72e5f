"""What the gateway does with one framed event: hand it off or refuse it, answer it or not.

No I/O: `Admission.judge` takes an event from the framer, the peer (`peers.peer_key`) and the
loop's monotonic time, and gives a `Verdict`:
- `topic`: where the event is handed off (`hj212/{MN}`, `hj212/_invalid`, `hj212/_unframed`), or
  None when it is refused: a packet whose MN and peer are locked out for wrong passwords
  (`lockout`) is neither handed off nor answered, whatever its password;
- `outcome`: the metric label (see `events`), `password_lockout` for a refused packet;
- `answers`: the packets to write once it is durable (`responses`);
- `valid`: a whole packet that parsed (length, CRC, syntax) and was not refused, the only thing
  that resets a connection's idle timer; the bytes of everything else count as garbage.

A wrong password counts against its (MN, peer) pair; the failure that reaches the limit is still
handed off and answered 9011 QnRtn=3 like the others (`lockout_started` says the lockout began),
the packets after it are refused. Anything but `RejectedPayload` raised while judging a packet is
a bug: the verdict is `internal_error` with the exception, and the packet is handed off without an
answer, so the daemon decodes or dead-letters it and the connection goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from config.registry import Registry
from ingest.decoders.hj212 import parse_packet
from ingest.errors import RejectedPayload
from ingest.sources.hj212_gateway.config import HJ212GatewayConfig
from ingest.sources.hj212_gateway.framing import Event, Garbage
from ingest.sources.hj212_gateway.handoff import UNFRAMED_TOPIC, sniff_mn, topic_for
from ingest.sources.hj212_gateway.lockout import PasswordLockout
from ingest.sources.hj212_gateway.responses import Access, check_access, plan_answers

PASSWORD_LOCKOUT = "password_lockout"  # noqa: S105 - an outcome name, not a password
INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str
    topic: str | None
    answers: tuple[bytes, ...] = ()
    cn: str | None = None
    valid: bool = False
    mn: str | None = None
    lockout_started: bool = False
    error: Exception | None = None


class Admission:
    """Judges the events of every connection of one gateway; used from its event loop only."""

    def __init__(
        self,
        config: HJ212GatewayConfig,
        registry: Registry,
        lockout: PasswordLockout,
        clock: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._registry = registry
        self.lockout = lockout
        self._clock = clock

    def judge(self, event: Event, peer: str, now: float) -> Verdict:
        """The verdict on `event` from `peer` at `now` (seconds, monotonic); never raises."""
        if isinstance(event, Garbage):
            return Verdict("unframed", UNFRAMED_TOPIC)
        if event.kind != "complete":
            return Verdict(event.kind, topic_for(sniff_mn(event.data)))
        try:
            return self._judge_packet(event.data, peer, now)
        except Exception as exc:  # a bug must cost one packet's answer, never the connection
            return Verdict(INTERNAL_ERROR, topic_for(sniff_mn(event.data)), error=exc)

    def _judge_packet(self, data: bytes, peer: str, now: float) -> Verdict:
        config = self._config
        try:
            packet = parse_packet(data, crc=config.crc, max_segment_length=config.max_segment_length)
        except RejectedPayload as exc:
            return Verdict(str(exc.reason), topic_for(sniff_mn(data)))
        key = (packet.mn, peer)
        if self.lockout.locked(key, now):
            return Verdict(PASSWORD_LOCKOUT, None, cn=packet.cn, mn=packet.mn)
        access, station = check_access(packet, self._registry)
        started = access is Access.WRONG_PASSWORD and self.lockout.failed(key, now)
        answers: tuple[bytes, ...] = ()
        if config.respond and packet.wants_response:
            zone = (station.timezone if station is not None else None) or config.timezone
            answers = plan_answers(
                packet,
                access,
                unknown_mn=config.unknown_mn,
                answer_time_requests=config.answer_time_requests,
                now=self._clock(),
                timezone=zone,
            )
        return Verdict(
            str(access),
            topic_for(packet.mn),
            answers,
            cn=packet.cn,
            valid=True,
            mn=packet.mn,
            lockout_started=started,
        )
