"""Field types shared by every component's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def known_time_zone(name: str) -> str:
    """`name`, if it is an IANA time zone this machine knows; ValueError otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


# A configured IANA time zone name ("Asia/Shanghai"), checked when the configuration loads.
TimeZoneName = Annotated[str, AfterValidator(known_time_zone)]


class StrictModel(BaseModel):
    """Base of every configuration model: unknown keys fail at start-up, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSConfig(StrictModel):
    """TLS for a client connection (MQTT broker, database, webhook)."""

    ca_file: Path | None = Field(None, description="CA bundle that signs the server certificate.")
    cert_file: Path | None = Field(None, description="Client certificate, for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key of the client certificate.")
    insecure_skip_verify: bool = Field(
        False, description="Accept any server certificate. For lab use only; logged as a warning."
    )

    @model_validator(mode="after")
    def _cert_needs_key(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self
