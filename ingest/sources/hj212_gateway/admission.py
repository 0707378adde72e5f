"""What the gateway does with one framed event: hand it off or refuse it, answer it or not.

No I/O: `Admission.judge` takes an event from the framer, the peer (`peers.peer_key`) and the
loop's monotonic time, and gives a `Verdict`:
- `topic`: where the event is handed off (`hj212/{MN}`, `hj212/_invalid`, `hj212/_unframed`), or
  None when it is refused: a packet whose MN and peer are locked out for wrong passwords
  (`lockout`) is neither handed off nor answered, whatever its password;
- `outcome`: the metric label (see `events`), `password_lockout` for a refused packet;
- `answers`: the packets to write once it is durable (`responses`), then the requests of the
  clock (`clock`: 1012 to set a logger's time, 1011 to ask for it);
- `payload`: what is handed off when it is not the bytes as sent: a data upload from a logger whose
  clock is off, with the clock's `EcowatchTimeShift` note (`clock`);
- `consumed`: an answer to the gateway's own request (a 9011, 9012 or 1011 upload with its QN),
  read by the clock, neither handed off nor refused (`topic` is None);
- `valid`: a whole packet that parsed (length, CRC, syntax) and was not refused, the only thing
  that resets a connection's idle timer; the bytes of everything else count as garbage.
Only a logger served as a station (`responses.trusted`) has its clock read, set or shifted, and
only while the gateway `respond`s.

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

from config.hj212 import default_code_table
from config.registry import Registry
from ingest.decoders.hj212 import Packet, parse_packet
from ingest.decoders.hj212.packet import annotate_time_shift
from ingest.errors import RejectedPayload
from ingest.sources.hj212_gateway.clock import ClockKeeper, ClockNote, ClockStep
from ingest.sources.hj212_gateway.config import HJ212GatewayConfig
from ingest.sources.hj212_gateway.framing import Event, Garbage
from ingest.sources.hj212_gateway.handoff import UNFRAMED_TOPIC, sniff_mn, topic_for
from ingest.sources.hj212_gateway.lockout import PasswordLockout
from ingest.sources.hj212_gateway.responses import Access, check_access, plan_answers, trusted

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
    payload: bytes | None = None
    consumed: bool = False
    clock: ClockNote | None = None


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
        self.clocks = ClockKeeper(
            tolerance=config.clock_tolerance,
            correction_interval=config.clock_correction_interval,
            query_interval=config.clock_query_interval,
            correct=config.correct_clocks,
            shift_readings=config.shift_readings,
            data_commands=frozenset(default_code_table().data_commands),
        )

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
        if not config.respond:
            return Verdict(
                str(access),
                topic_for(packet.mn),
                cn=packet.cn,
                valid=True,
                mn=packet.mn,
                lockout_started=started,
            )
        answers = plan_answers(packet, access, unknown_mn=config.unknown_mn)
        step = ClockStep()
        if trusted(access, config.unknown_mn):
            zone = (station.timezone if station is not None else None) or config.timezone
            step = self.clocks.handle(packet, zone, self._clock(), now)
        return Verdict(
            "consumed" if step.consumed else str(access),
            None if step.consumed else topic_for(packet.mn),
            answers + step.requests,
            cn=packet.cn,
            valid=True,
            mn=packet.mn,
            lockout_started=started,
            payload=_shifted(packet, step.shift_s),
            consumed=step.consumed,
            clock=step.note,
        )


def _shifted(packet: Packet, shift_s: int) -> bytes | None:
    """The packet with the clock's time shift noted, or None (no shift, or no room for the note)."""
    if not shift_s:
        return None
    try:
        return annotate_time_shift(packet, shift_s)
    except ValueError:  # past the 4-digit length field: handed off as sent, times unshifted
        return None
