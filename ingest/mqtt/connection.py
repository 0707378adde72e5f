"""`BrokerConnection`: how every ecowatch MQTT client reaches its broker, and `new_client` applying it.

One model for the source (the daemon's `mqtt:` section extends it with its session and its
subscriptions), the HJ 212 gateway's publisher, dead-letter replay and the simulator: the broker's
address, MQTT version, transport (TCP, or WebSockets where only HTTP ports are open), client id,
keepalive, user and password, TLS, and the delays between reconnection attempts.

`insecure_skip_verify` accepts any server certificate (no chain and no host name check) and is
logged as a warning each time a client is made with it.

Example:
    host: broker.example.org
    port: 8883
    protocol: "5"
    transport: tcp
    client_id: ecowatch-1
    keepalive: 30
    username: ecowatch
    password: "${ECOWATCH_MQTT_PASSWORD}"
    tls: {ca_file: /etc/ecowatch/ca.pem}
    reconnect_min_delay: PT0.5S
    reconnect_max_delay: PT30S
"""

from __future__ import annotations

import ssl
from datetime import timedelta
from typing import Literal, TypeVar

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import Field, SecretStr, model_validator

from config.types import StrictModel, TLSConfig

log = structlog.get_logger(__name__)

ClientT = TypeVar("ClientT", bound=mqtt.Client)


class BrokerConnection(StrictModel):
    """One MQTT broker and how to connect to it."""

    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, gt=0, lt=65536, description="Broker port (MQTT over TLS is usually 8883).")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    transport: Literal["tcp", "websockets"] = Field(
        "tcp",
        description="`websockets` carries MQTT in WebSocket frames (path /mqtt), e.g. through HTTP proxies.",
    )
    client_id: str = Field(
        "",
        max_length=64,
        description="Client id; empty lets the broker assign one (MQTT 5) or paho pick one (3.1.1). "
        "Two clients with one id push each other off the broker.",
    )
    keepalive: int = Field(30, ge=5, le=3600, description="Keepalive in seconds.")
    username: str | None = Field(None, description="User name, if the broker asks for one.")
    password: SecretStr | None = Field(None, description="Password of `username`.")
    tls: TLSConfig | None = Field(None, description="TLS to the broker; none (plain) when absent.")
    reconnect_min_delay: timedelta = Field(
        timedelta(milliseconds=500), description="First wait before connecting again after a loss."
    )
    reconnect_max_delay: timedelta = Field(
        timedelta(seconds=30), description="Longest wait between attempts (the waits double up to it)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> BrokerConnection:
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must be >= reconnect_min_delay")
        return self

    def connection_fields(self) -> dict[str, object]:
        """This model's connection fields alone, e.g. of the daemon's `mqtt:` section for a publisher."""
        return {name: getattr(self, name) for name in BrokerConnection.model_fields}


def new_client(
    connection: BrokerConnection,
    client_class: type[ClientT],
    *,
    clean_session: bool = True,
    manual_ack: bool = False,
    reconnect_on_failure: bool = True,
) -> ClientT:
    """A `client_class` (paho's `Client` or a subclass; callback API 2) set up for `connection`:
    version, transport, user and password, TLS, reconnect delays.

    `clean_session` applies to MQTT 3.1.1 only; MQTT 5 chooses its clean start at `connect`.
    The caller sets callbacks and connects (`connection.host`, `.port`, `.keepalive`).
    """
    v5 = connection.protocol == "5"
    client = client_class(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=connection.client_id,
        clean_session=None if v5 else clean_session,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        transport=connection.transport,
        reconnect_on_failure=reconnect_on_failure,
        manual_ack=manual_ack,
    )
    if connection.username is not None:
        password = connection.password.get_secret_value() if connection.password else None
        client.username_pw_set(connection.username, password)
    if connection.tls is not None:
        _set_tls(client, connection.tls, connection.host)
    # paho counts these in whole seconds.
    client.reconnect_delay_set(
        max(1, round(connection.reconnect_min_delay.total_seconds())),
        max(1, round(connection.reconnect_max_delay.total_seconds())),
    )
    return client


def _set_tls(client: mqtt.Client, tls: TLSConfig, host: str) -> None:
    insecure = tls.insecure_skip_verify
    client.tls_set(
        ca_certs=str(tls.ca_file) if tls.ca_file else None,
        certfile=str(tls.cert_file) if tls.cert_file else None,
        keyfile=str(tls.key_file) if tls.key_file else None,
        cert_reqs=ssl.CERT_NONE if insecure else ssl.CERT_REQUIRED,
    )
    if insecure:
        log.warning("mqtt_tls_verification_disabled", host=host)
        client.tls_insecure_set(True)
