"""Prometheus Alertmanager: alerts pushed to `POST /api/v2/alerts`, re-sent while they fire.

Alertmanager resolves by itself any alert whose `endsAt` has passed, and a client is expected to
re-send what still fires (Prometheus re-sends every `resend_delay`). So a firing alert goes with
`endsAt = now + resend_interval × ENDS_AT_FACTOR`, and the dispatcher re-sends the set of alerts
firing for this receiver every `resend_interval` and right after a start (the set is kept in the
alert database); a resolved alert goes once with its real end time, after which Alertmanager
no longer lists it as active. Alertmanager merges repeats by label set, so re-sends and retries
are harmless.

Each event becomes one alert:
    labels        the event's labels, plus alertname (the rule), severity, and the station's
                  station_id, district, basin and river when the event has no label of that
                  name; names made valid for Alertmanager ([a-zA-Z_][a-zA-Z0-9_]*), empty values
                  dropped
    annotations   the event's annotations (summary, description, `change` when the severity
                  changed while firing: the alert under the previous severity's labels is
                  then posted ended, `superseded_alert`), plus the values (`nh3n=1.81`), class
                  and target class, primary pollutants (codes), the item's and the severity's Chinese names
                  (`parameter_name` 氨氮, `severity_label` 严重 / 警告 / 提示) and the notification key
    startsAt, endsAt, generatorURL (the alert's link, if it is absolute: Alertmanager's UI
                  would open a relative one on its own host; set `notify.external_url` to
                  make the engine's relative links absolute, else start-up warns)
A digest or a re-send posts all its alerts in one request. Labels identify an alert in
Alertmanager: keep them stable over an alert's life (values belong in annotations).

Example:
    notify:
      receivers:
        - type: alertmanager
          name: alertmanager
          url: http://127.0.0.1:9093
          resend_interval: PT1M
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import AnyHttpUrl, ConfigDict, Field, SecretStr

from alerts.events import AlertEvent
from alerts.notifiers.http_verdict import error_from_response, post
from alerts.ratelimit import RateLimitConfig, target_id
from alerts.routing import RECEIVER_NAME_PATTERN
from alerts.templates import MISSING, MessageTemplate, Notification, event_fields, primary_link
from config.http import make_pool
from config.types import StrictModel, TLSConfig

# Prometheus sends endsAt = now + 4 × resend delay: three lost re-sends in a row before
# Alertmanager resolves a firing alert by itself.
ENDS_AT_FACTOR: Final = 4
_INVALID_LABEL_CHARS: Final = re.compile(r"[^a-zA-Z0-9_]")
# The English wording gives values as `code=value` and pollutants as codes, which templates can parse.
CODES: Final = MessageTemplate(language="en")


class AlertmanagerConfig(StrictModel):
    # A validation error must not echo the input: it holds secrets.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: Literal["alertmanager"] = "alertmanager"
    name: str = Field(pattern=RECEIVER_NAME_PATTERN, description="Receiver name in routes, logs and the API.")
    url: AnyHttpUrl = Field(description="Base URL of Alertmanager, e.g. http://127.0.0.1:9093.")
    resend_interval: timedelta = Field(
        timedelta(minutes=1),
        ge=timedelta(seconds=1),
        description="How often firing alerts are re-sent; they expire after 4 intervals without one.",
    )
    bearer_token: SecretStr | None = Field(None, description="Sent as `Authorization: Bearer`, if set.")
    timeout: timedelta = Field(timedelta(seconds=10), gt=timedelta(0), description="Limit on one request.")
    rate_limit: RateLimitConfig | None = Field(None, description="Requests per window; digests beyond.")
    tls: TLSConfig | None = Field(None, description="TLS settings for an https:// URL.")


class AlertmanagerNotifier:
    kind: ClassVar[str] = "alertmanager"

    def __init__(self, config: AlertmanagerConfig) -> None:
        self.config = config
        self.resend_interval: timedelta | None = config.resend_interval
        self._url = str(config.url).rstrip("/") + "/api/v2/alerts"
        self.target = target_id(self.kind, self._url)
        self._pool = make_pool(config.tls)
        self._headers = {"Content-Type": "application/json", "User-Agent": "ecowatch"}
        self._secrets: list[str] = []
        if config.bearer_token is not None:
            token = config.bearer_token.get_secret_value()
            self._headers["Authorization"] = f"Bearer {token}"
            self._secrets.append(token)

    def count_parts(self, _notification: Notification) -> int:
        return 1  # Alertmanager takes any number of alerts in one request

    def send(self, notification: Notification) -> None:
        alerts: list[dict[str, Any]] = []
        for event in notification.events:
            alerts.append(to_alert(event, notification.now, self.config.resend_interval))
            superseded = superseded_alert(event)
            if superseded is not None:
                alerts.append(superseded)
        answer = post(
            self._pool,
            self._url,
            orjson.dumps(alerts),
            {**self._headers, "Idempotency-Key": notification.key},
            timeout=self.config.timeout.total_seconds(),
            secrets=self._secrets,
        )
        error = error_from_response(answer, self._secrets)
        if error is not None:
            raise error

    def close(self) -> None:
        self._pool.clear()


def to_alert(event: AlertEvent, now: datetime, resend_interval: timedelta) -> dict[str, Any]:
    """One alert of the Alertmanager v2 API (`postableAlert`) for an event sent at `now`."""
    if event.status == "firing":
        ends_at = now + resend_interval * ENDS_AT_FACTOR
    else:
        ends_at = event.ends_at or event.event_at
    # Alertmanager refuses an alert that ends before it starts.
    ends_at = max(ends_at, event.starts_at)
    alert: dict[str, Any] = {
        "labels": alert_labels(event),
        "annotations": alert_annotations(event),
        "startsAt": _rfc3339(event.starts_at),
        "endsAt": _rfc3339(ends_at),
    }
    link = primary_link(event.links)
    if urlsplit(link).scheme in ("http", "https"):
        alert["generatorURL"] = link
    return alert


def superseded_alert(event: AlertEvent) -> dict[str, Any] | None:
    """The alert an escalation or de-escalation replaces, ended now, or None.

    Severity is a label, and labels are the alert's identity in Alertmanager: without this the
    alert under its old severity would stay active until its `endsAt` ran out.
    """
    previous = event.annotations.get("previous_severity")
    if event.status != "firing" or not previous or previous == event.severity:
        return None
    old = dataclasses.replace(
        event,
        status="resolved",
        severity=previous,
        labels={**event.labels, "severity": previous},
        ends_at=event.event_at,
    )
    return to_alert(old, event.event_at, timedelta(0))


def alert_labels(event: AlertEvent) -> dict[str, str]:
    found: dict[str, str] = {"alertname": event.rule, "severity": event.severity}
    if event.station is not None:
        station = event.station
        found |= {
            "station_id": station.id,
            "district": station.district,
            "basin": station.basin,
            "river": station.river,
        }
    found |= event.labels
    return {_label_name(k): v for k, v in found.items() if v}


def alert_annotations(event: AlertEvent) -> dict[str, str]:
    fields = event_fields(event, CODES)  # values and pollutants as codes, for Alertmanager's templates
    chinese = event_fields(event)
    found = {
        "summary": fields["summary"],
        "values": fields["values"],
        "water_class": fields["water_class"],
        "target_class": fields["target_class"],
        "primary_pollutants": fields["primary_pollutants"],
        "parameter_name": chinese["parameter_name"],
        "severity_label": chinese["severity_label"],
        "notification_key": event.key,
    }
    found |= event.annotations
    return {_label_name(k): v for k, v in found.items() if v and v != MISSING}


def _label_name(name: str) -> str:
    name = _INVALID_LABEL_CHARS.sub("_", name)
    return f"_{name}" if not name or name[0].isdigit() else name


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
