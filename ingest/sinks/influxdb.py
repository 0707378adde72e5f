"""InfluxDB 2 (and anything that speaks its `/api/v2/write`, such as VictoriaMetrics).

One synchronous write per batch through influxdb-client, with line protocol we encode ourselves
(`ingest.sinks.line_protocol`) at nanosecond precision. The client neither batches nor retries
(`retries=False`): the delivery loop owns batching, backoff and splitting, and a retry inside the
client would hide the verdict from it. Answers and network failures map to `SinkError` through
`ingest.sinks.http_status`. Writes are idempotent (same measurement, tags and time overwrite), so
a write that timed out but was applied anyway is harmless to repeat.

`check()` pings the server, then writes an empty body: InfluxDB 2 checks the token, the org and
the bucket before it looks at the body and then answers `400 writing requires points`, which a
write-only token can reach (listing buckets would need read access); VictoriaMetrics answers 204.

VictoriaMetrics stores the field `ph` of measurement `water_quality` as the metric
`water_quality_ph`, keeps milliseconds only, and stores string fields (the flags) as 0.

Example:
    sinks:
      - type: influxdb
        name: tsdb
        url: http://127.0.0.1:8086
        org: ecowatch
        bucket: water
        token: "${INFLUXDB_TOKEN}"
        gzip: true
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar, Final, Literal

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from influxdb_client.service.ping_service import PingService
from influxdb_client.service.write_service import WriteService
from pydantic import AnyHttpUrl, Field, SecretStr

from config.types import TLSConfig
from ingest.errors import SinkError, SinkReason
from ingest.model import Reading
from ingest.sinks import line_protocol
from ingest.sinks.base import SinkConfigBase
from ingest.sinks.http_status import sink_error_from_exception, sink_error_from_response

# /readyz must answer quickly even when the configured write timeout is long.
CHECK_TIMEOUT: Final = timedelta(seconds=3)
# What InfluxDB 2 answers to an empty write once token, org and bucket are known to be good.
_EMPTY_WRITE_MESSAGE: Final = "writing requires points"


class InfluxDBSinkConfig(SinkConfigBase):
    type: Literal["influxdb"] = "influxdb"
    url: AnyHttpUrl = Field(description="Base URL of the server, e.g. http://127.0.0.1:8086.")
    org: str = Field(min_length=1, description="Organization name (InfluxDB 2; ignored by VictoriaMetrics).")
    bucket: str = Field(min_length=1, description="Bucket the readings are written to.")
    token: SecretStr | None = Field(None, description="API token with write access to the bucket.")
    timeout: timedelta = Field(
        timedelta(seconds=10), gt=timedelta(0), description="Limit on one write request, connect to answer."
    )
    tls: TLSConfig | None = Field(None, description="TLS settings for an https:// URL.")
    gzip: bool = Field(False, description="Compress request bodies (worth it over a slow link).")


def _client(config: InfluxDBSinkConfig, *, gzip: bool) -> Any:
    tls = config.tls or TLSConfig()
    return InfluxDBClient(
        url=str(config.url).rstrip("/"),
        token=config.token.get_secret_value() if config.token is not None else "",
        org=config.org,
        timeout=_milliseconds(config.timeout),
        enable_gzip=gzip,
        verify_ssl=not tls.insecure_skip_verify,
        ssl_ca_cert=str(tls.ca_file) if tls.ca_file else None,
        cert_file=str(tls.cert_file) if tls.cert_file else None,
        cert_key_file=str(tls.key_file) if tls.key_file else None,
        retries=False,
    )


class InfluxDBSink:
    name: ClassVar[str] = "influxdb"

    def __init__(self, config: InfluxDBSinkConfig) -> None:
        self._config = config
        self._client: Any = _client(config, gzip=config.gzip)
        self._write_api: Any = self._client.write_api(write_options=SYNCHRONOUS)
        # The readiness probe's empty write goes uncompressed: influxdb-client gzips only non-empty
        # bodies, so with gzip on it would send an empty body marked gzip, which VictoriaMetrics
        # refuses ("cannot read gzipped ... EOF") and the sink would never be ready.
        self._probe_client: Any = _client(config, gzip=False)
        # influxdb-client's generated services carry no annotations.
        self._ping_service: Any = PingService(self._probe_client.api_client)  # type: ignore[no-untyped-call]
        self._write_service: Any = WriteService(self._probe_client.api_client)  # type: ignore[no-untyped-call]

    def write(self, readings: Sequence[Reading]) -> None:
        self.write_lines(line_protocol.request_body(readings))

    def write_lines(self, body: bytes) -> None:
        """Store readings already in line protocol, in one request."""
        if not body:
            return
        self._call(
            self._write_api.write,
            bucket=self._config.bucket,
            org=self._config.org,
            record=body,
            write_precision=WritePrecision.NS,
        )

    def check(self) -> None:
        timeout = _milliseconds(min(self._config.timeout, CHECK_TIMEOUT))
        self._call(self._ping_service.get_ping, _request_timeout=timeout)
        try:
            self._call(
                self._write_service.post_write,
                org=self._config.org,
                bucket=self._config.bucket,
                body="",
                precision=WritePrecision.NS,
                content_type="text/plain; charset=utf-8",
                _request_timeout=timeout,
            )
        except SinkError as error:
            if not (error.reason is SinkReason.REJECTED and _EMPTY_WRITE_MESSAGE in error.detail):
                raise

    def close(self) -> None:
        self._write_api.close()
        self._client.close()
        self._probe_client.close()

    @staticmethod
    def _call(method: Any, **kwargs: Any) -> None:
        try:
            method(**kwargs)
        except ApiException as exc:
            raise _error_from_api_exception(exc) from None
        except Exception as exc:  # urllib3 and socket errors alike
            raise sink_error_from_exception(exc) from None


def _error_from_api_exception(exc: ApiException) -> SinkError:
    status = exc.status or 0
    if status == 0:
        # influxdb-client turns urllib3's SSLError into an ApiException without a status.
        return SinkError(SinkReason.TLS, str(exc.reason), retryable=True)
    headers: Mapping[str, str] = exc.headers or {}
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body or "")
    return sink_error_from_response(status, headers, body) or SinkError(
        SinkReason.UNEXPECTED_STATUS, f"HTTP {status} raised as an error", retryable=False
    )


def _milliseconds(duration: timedelta) -> int:
    return max(1, round(duration.total_seconds() * 1000))
