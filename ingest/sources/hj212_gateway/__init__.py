"""HJ 212 TCP gateway: data loggers (数采仪) connect over TCP; their packets join the ingest path.

    logger --TCP--> framing --> CRC, syntax, MN + PW --> Handoff --> hj212/{MN} --> decode -> validate
                     ^                 | clock               | durable
                     +-- 9014 / 9013 / 9011 ... 1012 <-------+

`framing` cuts the byte stream into packets (`##` ... CR LF, bounded, resynchronising after
garbage); `admission` judges each (parse, MN and PW, password lockouts: `lockout`) and
`responses` decides the answers (reference, "Responses"); `clock` watches the loggers' clocks
(1013 -> 9013 then 1012 SystemTime; drift past `clock_tolerance` corrected, the readings kept and,
where they were shifted, marked time-corrected; 1011 answers read); `connection` serves one logger
(timeouts, garbage allowance, ordered answers); `server` listens and runs the connections on an
asyncio loop in a thread, within the connection limits of `peers`; `handoff` is the contract
packets are handed to, `mqtt` its QoS 1 MQTT implementation; `events` counts and logs; `cli` is
`ecowatch hj212-gateway`. Every packet is handed off, good or bad, so bad ones are dead-lettered
with their reason (bad_crc, wrong_password, unknown_station, malformed ...) by the normal decode ->
validate path; a logger that asks for an answer to an upload gets 9014 only once its packet is
durable (PUBACK, or fsync in the daemon's log). The exceptions: during a password lockout the
packets of that MN from that peer are dropped, unanswered; a logger's answers to the gateway's own
requests (9011, 9012, a 1011 upload with the gateway's QN) are read by `clock`, not handed off.

Facing the network, every resource a peer can hold is bounded: connections (in all, and per
address), the idle time (reset only by valid packets), a packet's time, garbage over a
connection's life, unanswered packets, and password guesses per MN and address.

Example:
    hj212_gateway:
      host: 0.0.0.0
      port: 9212
      max_connections: 1000
      max_connections_per_peer: 8
      idle_timeout: PT10M
      packet_timeout: PT30S
      max_garbage_bytes: 4096
      max_password_failures: 5
      password_lockout: PT15M
      unknown_mn: ignore
      clock_tolerance: PT1M
"""

from ingest.sources.hj212_gateway.config import GatewayPublishConfig, HJ212GatewayConfig
from ingest.sources.hj212_gateway.handoff import INVALID_MN_TOPIC, UNFRAMED_TOPIC, Handoff, topic_for
from ingest.sources.hj212_gateway.mqtt import GatewayMqttConfig, MqttHandoff
from ingest.sources.hj212_gateway.server import HJ212Gateway

__all__ = [
    "INVALID_MN_TOPIC",
    "UNFRAMED_TOPIC",
    "GatewayMqttConfig",
    "GatewayPublishConfig",
    "HJ212Gateway",
    "HJ212GatewayConfig",
    "Handoff",
    "MqttHandoff",
    "topic_for",
]
