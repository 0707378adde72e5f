"""InfluxDB 1.x: `POST /write?db=&rp=&precision=ns` with line protocol, basic auth, one request per batch.

Talks HTTP through urllib3 (influxdb-client's own transport), with retries and redirects off so
that every verdict reaches the delivery loop, which owns batching, backoff and splitting.
Credentials go in an `Authorization: Basic` header, never in the URL, so they cannot surface in
an exception that quotes the URL. Answers and network failures map to `SinkError` through
`ingest.sinks.http_status`; InfluxDB 1.6's `500 engine: error syncing wal` on small concurrent
writes is retryable, and harmless when the points were stored after all (same series and time
overwrite). Tag values with a backslash read back doubled on 1.x (see `line_protocol`).

`check()` pings, then runs `SHOW DATABASES` with the configured credentials: a wrong password
answers 401, and the database must be listed (InfluxDB lists it to a user who may only write).

Example:
    sinks:
      - type: influxdb1
        name: influx-legacy
        url: http://127.0.0.1:8086
        database: ecowatch
        username: ecowatch
        password: "${INFLUXDB_PASSWORD}"
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar, Final, Literal
from urllib.parse import urlencode

import urllib3
from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from config.http import make_pool
from config.types import TLSConfig
from ingest.errors import SinkError, SinkReason
from ingest.model import Reading
from ingest.sinks import line_protocol
from ingest.sinks.base import SinkConfigBase
from ingest.sinks.http_status import sink_error_from_exception, sink_error_from_response

# /readyz must answer quickly even when the configured write timeout is long.
CHECK_TIMEOUT: Final = timedelta(seconds=3)


class InfluxDB1SinkConfig(SinkConfigBase):
    type: Literal["influxdb1"] = "influxdb1"
    url: AnyHttpUrl = Field(description="Base URL of the server, e.g. http://127.0.0.1:8086.")
    database: str = Field(min_length=1, description="Database the readings are written to.")
    retention_policy: str | None = Field(None, description="Retention policy; the database default if unset.")
    username: str | None = Field(None, description="User with WRITE on the database (auth-enabled servers).")
    password: SecretStr | None = Field(None, description="Password of `username`.")
    timeout: timedelta = Field(
        timedelta(seconds=10), gt=timedelta(0), description="Limit on one write request, connect to answer."
    )
    tls: TLSConfig | None = Field(None, description="TLS settings for an https:// URL.")
    gzip: bool = Field(False, description="Compress request bodies (worth it over a slow link).")

    @model_validator(mode="after")
    def _user_needs_password(self) -> InfluxDB1SinkConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        return self


class InfluxDB1Sink:
    name: ClassVar[str] = "influxdb1"

    def __init__(self, config: InfluxDB1SinkConfig) -> None:
        self._config = config
        self._base_url = str(config.url).rstrip("/")
        self._pool = make_pool(config.tls)
        self._headers: dict[str, str] = {}
        if config.username is not None and config.password is not None:
            credentials = f"{config.username}:{config.password.get_secret_value()}"
            self._headers.update(urllib3.make_headers(basic_auth=credentials))
        params = {"db": config.database, "precision": "ns"}
        if config.retention_policy:
            params["rp"] = config.retention_policy
        self._write_url = f"{self._base_url}/write?{urlencode(params)}"

    def write(self, readings: Sequence[Reading]) -> None:
        self.write_lines(line_protocol.request_body(readings))

    def write_lines(self, body: bytes) -> None:
        """Store readings already in line protocol, in one request."""
        if not body:
            return
        headers = {**self._headers, "Content-Type": "text/plain; charset=utf-8"}
        if self._config.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._request("POST", self._write_url, self._config.timeout, body=body, headers=headers)

    def check(self) -> None:
        timeout = min(self._config.timeout, CHECK_TIMEOUT)
        self._request("GET", f"{self._base_url}/ping", timeout)
        query = urlencode({"q": "SHOW DATABASES"})
        answer = self._request("GET", f"{self._base_url}/query?{query}", timeout, headers=self._headers)
        if self._config.database not in _database_names(answer):
            raise SinkError(
                SinkReason.NOT_FOUND, f"database {self._config.database!r} does not exist", retryable=True
            )

    def close(self) -> None:
        self._pool.clear()

    def _request(
        self,
        method: str,
        url: str,
        timeout: timedelta,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        try:
            response = self._pool.request(
                method,
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(total=timeout.total_seconds()),
            )
        except Exception as exc:  # urllib3 and socket errors alike
            raise sink_error_from_exception(exc) from None
        error = sink_error_from_response(
            response.status, response.headers, response.data.decode(errors="replace")
        )
        if error is not None:
            raise error
        return response.data


def _database_names(answer: bytes) -> set[str]:
    """The names in a `SHOW DATABASES` answer: {"results": [{"series": [{"values": [["db"]]}]}]}."""
    try:
        result = json.loads(answer)["results"][0]
        if "error" in result:
            raise SinkError(
                SinkReason.UNEXPECTED_ANSWER, f"SHOW DATABASES: {result['error']}", retryable=True
            )
        return {row[0] for item in result.get("series", []) for row in item.get("values", [])}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise SinkError(
            SinkReason.UNEXPECTED_ANSWER, "SHOW DATABASES answered no database list", retryable=True
        ) from None
