"""Field types shared by every component's configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
