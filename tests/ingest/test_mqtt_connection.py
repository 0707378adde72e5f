"""The one broker-connection config: its checks, how it sets up paho, and who builds on it."""

from __future__ import annotations

import ssl
import textwrap
import warnings
from pathlib import Path
from types import ModuleType

import paho.mqtt.client as mqtt
import pytest
import yaml
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

import ingest.mqtt.connection
import ingest.mqtt.publisher
import ingest.sources.mqtt
from config.types import TLSConfig
from ingest.app.settings import load_settings
from ingest.mqtt import BrokerConnection, PublisherConfig, new_client
from ingest.sources.hj212_gateway import GatewayMqttConfig, GatewayPublishConfig
from ingest.sources.mqtt import MQTTConfig


def _example(module: ModuleType) -> object:
    body = (module.__doc__ or "").split("Example:\n", 1)[1]
    return yaml.safe_load(textwrap.dedent(body))


def test_the_examples_validate() -> None:
    """The `Example:` blocks of the connection, the publisher and the source validate with their models."""
    connection = BrokerConnection.model_validate(_example(ingest.mqtt.connection))
    assert (connection.port, connection.transport, connection.keepalive) == (8883, "tcp", 30)
    publisher = PublisherConfig.model_validate(_example(ingest.mqtt.publisher))
    assert publisher.max_unacked == 1000
    source = _example(ingest.sources.mqtt)
    assert isinstance(source, dict)
    assert len(MQTTConfig.model_validate(source["mqtt"]).subscriptions) == 2


def test_inconsistent_connections_are_refused_at_load() -> None:
    """A password without a user, or a longest reconnect delay below the first, fail with the reason."""
    with pytest.raises(ValidationError, match="password given without username"):
        BrokerConnection(password=SecretStr("x"))
    with pytest.raises(ValidationError, match="reconnect_max_delay"):
        BrokerConnection.model_validate({"reconnect_min_delay": "PT10S", "reconnect_max_delay": "PT1S"})
    with pytest.raises(ValidationError, match="transport"):
        BrokerConnection.model_validate({"transport": "quic"})


def test_the_daemon_mqtt_section_keeps_every_key_it_had() -> None:
    """The `mqtt:` section takes every key it took before the connection became a shared model."""
    section = {
        "host": "broker",
        "port": 8883,
        "protocol": "3.1.1",
        "transport": "websockets",
        "client_id": "ecowatch-1",
        "clean_start": True,
        "session_expiry": "P1D",
        "keepalive": 60,
        "receive_maximum": 500,
        "username": "u",
        "password": "p",
        "tls": {"insecure_skip_verify": True},
        "reconnect_min_delay": "PT1S",
        "reconnect_max_delay": "PT5S",
        "subscriptions": [{"topic": "hj212/{mn}", "format": "hj212"}],
    }
    config = load_settings(None, mqtt=section).mqtt
    assert isinstance(config, BrokerConnection)
    assert (config.transport, config.keepalive, config.receive_maximum) == ("websockets", 60, 500)
    with pytest.raises(ValidationError, match="client_id"):
        MQTTConfig(client_id="")  # the persistent session needs a fixed id


def test_a_publisher_to_the_daemons_broker_takes_its_connection_and_nothing_else() -> None:
    """Replay and the gateway connect as the daemon does (transport, TLS, user), under their own id."""
    daemon = MQTTConfig(
        host="broker",
        port=8443,
        transport="websockets",
        username="u",
        password=SecretStr("p"),
        tls=TLSConfig(ca_file=Path("/ca.pem")),
        keepalive=45,
    )
    replay = PublisherConfig.to(daemon, client_id="ecowatch-replay")
    assert type(replay) is PublisherConfig
    assert (replay.host, replay.port, replay.transport, replay.keepalive) == (
        "broker",
        8443,
        "websockets",
        45,
    )
    assert replay.tls == daemon.tls
    assert replay.password is not None
    assert replay.password.get_secret_value() == "p"
    assert replay.client_id == "ecowatch-replay"
    gateway = GatewayMqttConfig.from_settings(daemon, GatewayPublishConfig(client_id="gw-1", max_unacked=7))
    assert (gateway.transport, gateway.client_id, gateway.max_unacked, gateway.qos) == (
        "websockets",
        "gw-1",
        7,
        1,
    )
    with pytest.raises(ValidationError):
        GatewayMqttConfig.model_validate({"qos": 0})  # a PUBACK is what makes a packet durable


def test_the_simulators_old_field_names_still_work_with_a_deprecation_warning() -> None:
    """`max_inflight`, `keepalive_s` and `connect_timeout_s` map to their new names and warn once each."""
    with pytest.warns(DeprecationWarning, match="is deprecated; use") as caught:
        options = PublisherConfig.model_validate(
            {"max_inflight": 5, "keepalive_s": 40, "connect_timeout_s": 2.5}
        )
    assert (options.max_unacked, options.keepalive, options.connect_timeout.total_seconds()) == (5, 40, 2.5)
    assert sorted(str(w.message).split("`")[1] for w in caught) == [
        "connect_timeout_s",
        "keepalive_s",
        "max_inflight",
    ]
    with pytest.raises(ValidationError, match="not both"):
        PublisherConfig.model_validate({"max_inflight": 5, "max_unacked": 6})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert PublisherConfig(max_unacked=5).max_unacked == 5  # the new names do not warn


def test_new_client_sets_up_paho_as_configured() -> None:
    """Version, transport, user and password reach paho; the client class may be a subclass."""

    class Marked(mqtt.Client):
        pass

    connection = BrokerConnection(
        protocol="3.1.1", transport="websockets", client_id="c-1", username="u", password=SecretStr("p")
    )
    client = new_client(connection, Marked)
    assert isinstance(client, Marked)
    assert client.protocol == mqtt.MQTTv311
    assert client.transport == "websockets"
    assert (client.username, client.password) == ("u", "p")


def test_insecure_tls_accepts_any_certificate_and_says_so(tmp_path: Path) -> None:
    """`insecure_skip_verify` turns off the chain and host name checks, and logs a warning."""
    with capture_logs() as logs:
        client = new_client(BrokerConnection(tls=TLSConfig(insecure_skip_verify=True)), mqtt.Client)
    context = client._ssl_context  # paho keeps the context it made from tls_set
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname
    assert [e["event"] for e in logs] == ["mqtt_tls_verification_disabled"]
    strict = new_client(BrokerConnection(tls=TLSConfig()), mqtt.Client)._ssl_context
    assert strict is not None
    assert strict.verify_mode == ssl.CERT_REQUIRED
    assert strict.check_hostname
