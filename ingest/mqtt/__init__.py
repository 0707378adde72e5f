"""MQTT for every ecowatch client: one broker-connection config, one windowed QoS 1 publisher.

    connection      BrokerConnection (host, port, protocol, transport, client id, keepalive, user,
                    password, TLS, reconnect delays) and `new_client`, a paho client set up from it
    publisher       PublisherConfig and WindowedPublisher: QoS 1 with a bounded unacknowledged
                    window (paho loses messages past 65 535 unacknowledged), PublishObserver
    paho_internals  where we reach under paho's API: the buffered socket and hand-written PUBACKs

The MQTT source (`ingest.sources.mqtt`), the HJ 212 gateway's hand-off, dead-letter replay and the
simulator all connect through `BrokerConnection`; the last three publish through `WindowedPublisher`.
"""

from ingest.mqtt.connection import BrokerConnection, new_client
from ingest.mqtt.publisher import PublisherConfig, PublishObserver, WindowedPublisher

__all__ = ["BrokerConnection", "PublishObserver", "PublisherConfig", "WindowedPublisher", "new_client"]
