"""The `mqtt:` section: the broker connection, the persistent session, and what to subscribe to.

`MQTTConfig` is a `BrokerConnection` (ingest.mqtt.connection: host, port, protocol, transport,
client id, keepalive, user, password, TLS, reconnect delays) plus the session the daemon keeps
at the broker and its subscriptions. Each subscription is a topic template whose `{name}` levels
become tags; every placeholder but `station_id`, `mn` and `district` (the registry bounds those)
needs its allowed values, so publishers cannot create unbounded series.

The package's docstring (ingest.sources.mqtt) has an example of the whole section.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final, Literal

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, field_validator, model_validator

from config.types import StrictModel
from ingest.mqtt import BrokerConnection
from ingest.topics import Allowed, TopicTemplate

# Placeholders that do not become free tags: the registry bounds the station's names and its
# district is the registry's (the topic's value is not stored).
REGISTRY_PLACEHOLDERS: Final = frozenset({"station_id", "mn", "district"})


class TagValues(StrictModel):
    """The values one topic placeholder may take: a list, or a pattern the whole value matches."""

    values: tuple[str, ...] | None = Field(None, min_length=1, description="The allowed values.")
    pattern: str | None = Field(
        None, max_length=200, description="A regular expression the whole value must match."
    )

    @model_validator(mode="after")
    def _one(self) -> TagValues:
        if (self.values is None) == (self.pattern is None):
            raise ValueError("give exactly one of `values` and `pattern`")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern: {exc}") from None
        return self

    def allowed(self) -> Allowed:
        return frozenset(self.values) if self.values is not None else re.compile(self.pattern or "")


class SubscriptionConfig(StrictModel):
    topic: str = Field(description="Topic template; `{name}` levels become tags.")
    format: Literal["json", "senml", "hj212"] = Field("json", description="Decoder for these payloads.")
    qos: Literal[0, 1] = 1
    tags: dict[str, TagValues] = Field(
        default_factory=dict,
        description="The values each placeholder that becomes a tag may take (every placeholder but "
        "station_id, mn and district, which the registry bounds). Topics with other values are "
        "dead-lettered as bad_topic, so publishers cannot create unbounded series.",
    )

    @field_validator("topic")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        TopicTemplate.parse(value)
        return value

    @model_validator(mode="after")
    def _bounded_tags(self) -> SubscriptionConfig:
        template = self.template()  # also refuses values for names that are not placeholders
        free = [p for p in template.placeholders if p not in REGISTRY_PLACEHOLDERS and p not in self.tags]
        if free:
            raise ValueError(
                f"topic {self.topic!r}: placeholders {free} become tags; give their allowed values "
                "under `tags` (e.g. tags: {kind: {values: [water, hydro]}})"
            )
        return self

    def template(self) -> TopicTemplate:
        return TopicTemplate.parse(self.topic, {name: rule.allowed() for name, rule in self.tags.items()})


DEFAULT_SUBSCRIPTIONS = (
    SubscriptionConfig(
        topic="ecowatch/v1/{district}/{station_id}/{kind}",
        format="json",
        tags={"kind": TagValues(values=("water", "hydro", "status"))},
    ),
    SubscriptionConfig(topic="ecowatch/senml/{station_id}", format="senml"),
    SubscriptionConfig(topic="hj212/{mn}", format="hj212"),
)


class MQTTConfig(BrokerConnection):
    """The daemon's broker connection, its persistent session and its subscriptions."""

    client_id: str = Field(
        "ecowatch", min_length=1, max_length=64, description="Fixed, for the persistent session."
    )
    clean_start: bool = Field(
        False, description="Start a new session on connect (loses what the broker queued)."
    )
    session_expiry: timedelta = Field(
        timedelta(days=7),
        description="MQTT 5 session expiry: how long the broker keeps our queue while we are away.",
    )
    receive_maximum: int = Field(
        1000,
        ge=1,
        le=65535,
        description="MQTT 5 Receive Maximum: unacknowledged messages the broker may send us.",
    )
    subscriptions: tuple[SubscriptionConfig, ...] = Field(
        DEFAULT_SUBSCRIPTIONS, description="What to subscribe to, and how to decode and tag it."
    )

    @model_validator(mode="after")
    def _subscribes(self) -> MQTTConfig:
        if not self.subscriptions:
            raise ValueError("at least one subscription is needed")
        return self

    def connect_properties(self) -> Properties | None:
        """MQTT 5 CONNECT properties: the session's expiry and our Receive Maximum."""
        if self.protocol != "5":
            return None
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = int(self.session_expiry.total_seconds())
        properties.ReceiveMaximum = self.receive_maximum
        return properties
