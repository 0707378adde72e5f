"""Configuration of the HJ 212 TCP gateway: the listener, its limits and timeouts, the answers.

The `hj212_gateway:` section of the ecowatch configuration. Sizes are in bytes, durations ISO 8601
(`PT30S`). The `mqtt:` sub-section applies only when the gateway publishes to the broker (`ecowatch
hj212-gateway`); the broker itself, its credentials and TLS come from the top-level `mqtt:` section.

Example:
    host: 0.0.0.0
    port: 9212
    max_connections: 2000
    max_connections_per_peer: 8
    max_segment_length: 1024
    idle_timeout: PT10M
    packet_timeout: PT30S
    max_garbage_bytes: 4096
    max_password_failures: 5
    password_failure_window: PT10M
    password_lockout: PT15M
    crc: hj212
    unknown_mn: ignore
    correct_clocks: true
    clock_tolerance: PT1M
    clock_correction_interval: PT10M
    shift_readings: true
    mqtt: {client_id: ecowatch-hj212-gateway-1, max_unacked: 1000}
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, Literal

from pydantic import Field, field_validator

from config.types import StrictModel, TimeZoneName
from ingest.decoders.hj212 import DEFAULT_TIMEZONE, MAX_SEGMENT_LENGTH, CrcVariant
from ingest.decoders.hj212.packet import LENGTH_FIELD_LIMIT

# "##", four length digits, four CRC digits, CR LF around the data segment.
FRAME_OVERHEAD_BYTES = 12
# A data logger keeps one connection (some a second for commands), and a logger on a flaky mobile
# link may reconnect before its old half-open connection reaches the idle timeout; 8 also covers
# a few loggers behind one NAT router. Loggers behind a carrier-grade NAT need more.
DEFAULT_MAX_CONNECTIONS_PER_PEER = 8
# HJ 352-2019 wants a logger within 30 s of Beijing time and HJ 477-2009 lets its clock run
# 0.5 per mille (43 s a day) off: twice the 30 s leaves room for a DTU that holds a packet a while,
# so transit delay never passes for drift, and stays far below validation's 5-minute future skew,
# so a logger is corrected long before its readings would be refused.
DEFAULT_CLOCK_TOLERANCE = timedelta(minutes=1)

UnknownMnPolicy = Literal["ignore", "refuse", "accept"]


# What may stand for the logger in the gateway's topic.
TOPIC_PLACEHOLDERS: Final = ("{mn}", "{station_id}")


class GatewayPublishConfig(StrictModel):
    """How the standalone gateway publishes to the broker of the top-level `mqtt:` section."""

    client_id: str = Field(
        "ecowatch-hj212-gateway",
        min_length=1,
        max_length=64,
        description="MQTT client id; must differ from the daemon's, or the broker drops one of them.",
    )
    max_unacked: int = Field(
        1000,
        ge=1,
        le=65000,
        description="QoS 1 messages awaiting PUBACK before more wait in the gateway: paho loses "
        "messages past 65 535 unacknowledged.",
    )
    topic: str = Field(
        "hj212/{mn}",
        max_length=200,
        description="The topic each packet is published on. `{mn}` stands for the logger's MN, or "
        "`{station_id}` for the registry's station of that MN (the MN itself when unknown); "
        "`_invalid` and `_unframed` take their place for a packet without a readable MN. The daemon "
        "needs a subscription of the same shape with format hj212. Cluster mode: "
        "`ecowatch/v1/hj212/{station_id}/packet`, so that a station's packets land in its partition "
        "of the stations stream (deploy/cluster/README.md).",
    )

    @field_validator("topic")
    @classmethod
    def _one_logger_level(cls, topic: str) -> str:
        levels = topic.split("/")
        placeholders = [level for level in levels if level in TOPIC_PLACEHOLDERS]
        if len(placeholders) != 1 or any(not level or level.strip("+#") != level for level in levels):
            raise ValueError(
                "the topic needs one of `{mn}`, `{station_id}` as one whole level, no empty levels "
                "and no + or #"
            )
        if any(c in topic.replace(placeholders[0], "") for c in "{}\x00"):
            raise ValueError("the topic may hold no other placeholder")
        return topic


class HJ212GatewayConfig(StrictModel):
    """The HJ 212 gateway: a TCP listener for data loggers."""

    host: str = Field("127.0.0.1", description="Listen address; 0.0.0.0 accepts loggers from the network.")
    port: int = Field(9212, ge=0, lt=65536, description="Listen port; 0 picks a free one (tests).")
    max_connections: int = Field(
        1000, ge=1, description="Connections beyond this are accepted and closed at once."
    )
    max_connections_per_peer: int = Field(
        DEFAULT_MAX_CONNECTIONS_PER_PEER,
        ge=1,
        description="Connections one peer (an IPv4 address, an IPv6 /64) may hold open; more are "
        "accepted and closed at once, so one address cannot take every slot. A logger uses one or "
        "two; raise it for many loggers behind one NAT.",
    )
    max_segment_length: int = Field(
        MAX_SEGMENT_LENGTH,
        ge=0,
        le=LENGTH_FIELD_LIMIT,
        description="Longest data segment; a packet may be this plus 12 bytes of framing. "
        "Keep it equal to the HJ 212 decoder's, or the daemon dead-letters what the gateway took.",
    )
    idle_timeout: timedelta = Field(
        timedelta(minutes=10),
        gt=timedelta(0),
        description="Close a connection that sends no valid packet for this long. Only a whole "
        "packet that parses (length, CRC, syntax) and is not refused resets the timer: garbage, "
        "broken packets and DTU heartbeat bytes do not, so keep it above the loggers' upload interval.",
    )
    packet_timeout: timedelta = Field(
        timedelta(seconds=30),
        description="A packet, once its `##` arrived, must end within this (slow senders).",
    )
    write_timeout: timedelta = Field(
        timedelta(seconds=10), description="Close a connection that does not take our answers."
    )
    handoff_timeout: timedelta = Field(
        timedelta(seconds=60),
        description="Close a connection whose packet the handoff has not made durable in this time.",
    )
    max_garbage_bytes: int = Field(
        4096,
        ge=0,
        description="Close a connection once it has sent more than this many bytes of garbage, "
        "truncated, oversized, unparseable or refused packets over its whole life; valid packets "
        "do not reset the count (the logger reconnects with a fresh allowance).",
    )
    max_password_failures: int = Field(
        5,
        ge=1,
        description="Wrong passwords of one MN from one peer within `password_failure_window` that "
        "lock the pair out: a logger with a stale password fails a few times, a guesser many.",
    )
    password_failure_window: timedelta = Field(
        timedelta(minutes=10),
        gt=timedelta(0),
        description="How long a wrong password counts towards `max_password_failures`.",
    )
    password_lockout: timedelta = Field(
        timedelta(minutes=15),
        gt=timedelta(0),
        description="How long a locked-out MN and peer get every packet refused (not handed off, "
        "not answered), right password or not. The defaults allow 5 guesses per 15 minutes.",
    )
    max_unanswered: int = Field(
        64,
        ge=1,
        le=10000,
        description="Packets of one connection awaiting their durable handoff before it stops reading.",
    )
    crc: CrcVariant | tuple[CrcVariant, ...] = Field(
        "hj212",
        description="CRC variants accepted besides the standard's: `modbus` (the Modbus CRC-16 some "
        "loggers send), `modbus_swapped` (the same, low byte first), or a list of both. Keep it "
        "equal to the HJ 212 decoder's.",
    )
    respond: bool = Field(
        True,
        description="Answer packets that ask for it (Flag bit A). Off, the gateway sends nothing, "
        "not even clock corrections.",
    )
    unknown_mn: UnknownMnPolicy = Field(
        "ignore",
        description="Packets from an MN not in the registry: `ignore` (no answer), `refuse` "
        "(9011 QnRtn=2) or `accept` (answer as a station without a password).",
    )
    timezone: TimeZoneName = Field(
        DEFAULT_TIMEZONE,
        description="Zone of the loggers' clocks (QN, DataTime, SystemTime) for stations without "
        "their own `timezone`.",
    )
    correct_clocks: bool = Field(
        True,
        description="Set a logger's clock (CN 1012, SystemTime) when it asks (CN 1013, answered "
        "9013) and when its packets show it off by more than `clock_tolerance`. Needs `respond`.",
    )
    clock_tolerance: timedelta = Field(
        DEFAULT_CLOCK_TOLERANCE,
        gt=timedelta(0),
        description="How far a logger's clock (its QN, or the DataTime of real-time data) may be "
        "from the platform's before it is corrected and its readings shifted. UNVERIFIED: the "
        "standards give 30 s (HJ 352-2019); the default doubles it for transit delay.",
    )
    clock_correction_interval: timedelta = Field(
        timedelta(minutes=10),
        gt=timedelta(0),
        description="At most one correction a logger did not ask for per MN in this time, so a "
        "logger that ignores it, or a backlog of old packets, is not flooded with 1012.",
    )
    shift_readings: bool = Field(
        True,
        description="Shift the readings of a logger whose clock is off by more than the tolerance "
        "by the error measured, marking them time-corrected: when it is ahead, and for real-time "
        "data when it is behind (a late minute, hourly or daily packet may be a resent backlog).",
    )
    clock_query_interval: timedelta | None = Field(
        None,
        gt=timedelta(0),
        description="Ask each logger for its time (CN 1011) at most this often, reading the answer "
        "into the logs and metrics. Off by default: a logger's QN already shows its clock.",
    )
    mqtt: GatewayPublishConfig = GatewayPublishConfig()

    @property
    def max_packet_bytes(self) -> int:
        return self.max_segment_length + FRAME_OVERHEAD_BYTES
