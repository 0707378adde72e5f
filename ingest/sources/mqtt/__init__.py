"""The MQTT source: paho-mqtt 2.x, QoS 1, a persistent session, manual acknowledgement.

Each message is appended to the raw write-ahead log through the group committer; its PUBACK is
sent only once the log is fsynced, so an acknowledged message survives SIGKILL. When the log is
full the committer holds messages unacknowledged: the broker stops sending past its in-flight
window (MQTT 5 Receive Maximum, which we set) and keeps the rest queued, until there is room.

    config   MQTTConfig: the broker connection (ingest.mqtt's BrokerConnection), the persistent
             session and the subscriptions (topic templates, their formats and allowed tags)
    source   MQTTSource: paho's callbacks, the acks of each group commit, connection supervision
             (reconnect with capped, jittered backoff; resubscribe on every connect)
    receive  the receive loop's round: paho driven by hand over a buffered socket, because the
             receive path is the daemon's ceiling (ARCHITECTURE.md, facts); the socket and the hand-written
             PUBACKs are in ingest.mqtt.paho_internals

Example:
    mqtt:
      host: broker.example.org
      port: 8883
      protocol: "5"
      client_id: ecowatch-1
      username: ecowatch
      password: "${ECOWATCH_MQTT_PASSWORD}"
      tls: {ca_file: /etc/ecowatch/ca.pem}
      subscriptions:
        - {topic: "ecowatch/v1/{district}/{station_id}/{kind}", format: json,
           tags: {kind: {values: [water, hydro, status]}}}
        - {topic: "hj212/{mn}", format: hj212}
"""

from ingest.sources.mqtt.config import (
    DEFAULT_SUBSCRIPTIONS,
    REGISTRY_PLACEHOLDERS,
    MQTTConfig,
    SubscriptionConfig,
    TagValues,
)
from ingest.sources.mqtt.source import AckToken, MQTTSource

__all__ = [
    "DEFAULT_SUBSCRIPTIONS",
    "REGISTRY_PLACEHOLDERS",
    "AckToken",
    "MQTTConfig",
    "MQTTSource",
    "SubscriptionConfig",
    "TagValues",
]
