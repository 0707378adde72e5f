"""`MqttHandoff`: the gateway's packets to the broker, QoS 1, durable at PUBACK.

The pipeline's one windowed publisher (ingest.mqtt.publisher) with the gateway's logs and metrics:
`submit` never waits for the broker; at most `max_unacked` messages are in paho's hands, the rest
wait in order (the gateway bounds how many it submits). paho reconnects on its own (a bare
`loop()` does not; ARCHITECTURE.md, facts) and resends the window's messages. `on_durable` runs at the
PUBACK, on paho's thread. A message the broker refuses (an MQTT 5 PUBACK reason of 0x80 or more,
e.g. not authorised) is counted and logged and never made durable.

A PUBACK means the broker holds the message for its subscribers: the daemon must already have
subscribed with its persistent session, or the broker drops what nobody subscribed to.

Example:
    {host: 127.0.0.1, port: 1883, protocol: "5", client_id: ecowatch-hj212-gateway, max_unacked: 1000}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

import structlog
from pydantic import Field

from config.registry import Registry
from ingest.mqtt import BrokerConnection, PublisherConfig, PublishObserver, WindowedPublisher
from ingest.sources.hj212_gateway import events
from ingest.sources.hj212_gateway.config import GatewayPublishConfig
from ingest.sources.hj212_gateway.handoff import TOPIC_PREFIX

DEFAULT_TOPIC: Final = TOPIC_PREFIX + "{mn}"

log = structlog.get_logger(__name__)


class GatewayMqttConfig(PublisherConfig):
    """The broker connection of `MqttHandoff`: QoS 1, so that a PUBACK means durable."""

    client_id: str = Field(
        "ecowatch-hj212-gateway",
        min_length=1,
        max_length=64,
        description="MQTT client id; must differ from the daemon's, or the broker drops one of them.",
    )
    qos: Literal[1] = Field(1, description="Always 1: a logger's packet is answered once acknowledged.")
    topic: str = Field("hj212/{mn}", description="See `GatewayPublishConfig.topic`.")

    @classmethod
    def from_settings(cls, mqtt_config: BrokerConnection, publish: GatewayPublishConfig) -> GatewayMqttConfig:
        """The daemon's broker, user and TLS, with the gateway's own client id, window and topic."""
        return cls.to(
            mqtt_config, client_id=publish.client_id, max_unacked=publish.max_unacked, topic=publish.topic
        )


class _HandoffEvents(PublishObserver):
    """The hand-off's log lines and its `ecowatch_hj212_handoff_*` metrics."""

    def connected(self, config: BrokerConnection) -> None:
        log.info("hj212_handoff_connected", host=config.host, port=config.port)

    def connect_refused(self, config: BrokerConnection, reason: str) -> None:
        log.error("hj212_handoff_connect_refused", host=config.host, reason_code=reason)

    def disconnected(self, config: BrokerConnection, reason: str, *, closing: bool) -> None:
        level = log.info if closing else log.warning
        level("hj212_handoff_disconnected", host=config.host, reason_code=reason)

    def refused(self, mid: int, reason: str) -> None:
        log.error("hj212_handoff_refused", mid=mid, reason_code=reason)
        events.handoff_failed()

    def not_taken(self, topic: str, error: str) -> None:
        log.error("hj212_handoff_publish_failed", topic=topic, error=error)
        events.handoff_failed()

    def window(self, pending: int) -> None:
        events.handoff_pending(pending)

    def closed_with_pending(self, count: int) -> None:
        log.error("hj212_handoff_closed_with_pending", pending=count, reason="no PUBACK before close")


class MqttHandoff(WindowedPublisher):
    """The gateway's `Handoff` over MQTT: `submit(topic, payload, on_durable)` and `close()`."""

    def __init__(self, options: GatewayMqttConfig, registry: Registry | None = None) -> None:
        """`registry` resolves MNs to stations for a `{station_id}` topic (else the MN stands)."""
        super().__init__(options, _HandoffEvents())
        self._topic = options.topic
        self._registry = registry

    def submit(self, topic: str, payload: bytes, on_durable: Callable[[], None] | None = None) -> None:
        """Publish on the configured topic: the gateway's `hj212/<mn>` with the MN, or its
        station's id, in the placeholder."""
        if topic.startswith(TOPIC_PREFIX) and self._topic != DEFAULT_TOPIC:
            mn = topic[len(TOPIC_PREFIX) :]
            if "{station_id}" in self._topic:
                station = self._registry.by_mn(mn) if self._registry is not None else None
                topic = self._topic.replace("{station_id}", station.id if station is not None else mn)
            else:
                topic = self._topic.replace("{mn}", mn)
        super().submit(topic, payload, on_durable)

    def close(self, timeout: float = 10.0) -> None:
        """Wait up to `timeout` s for outstanding PUBACKs, count the rest as failed, disconnect."""
        super().close(timeout)
