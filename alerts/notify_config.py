"""The `notify` section: receivers, routes, the retry budget and the outbox's pace.

Receivers are the channels (`alerts.notifiers`), each with its own settings and rate limit;
routes pick receivers by label matchers and severity (`alerts.routing`); `retry` is how long a
delivery that keeps failing in a retryable way is tried before it is marked failed and logged
at error level. Receiver names must be unique and every name a route gives must exist; both
are checked at load, with the key that is wrong, as are robot rate limits above what the
robot takes.

What loads but would not work as meant is reported at start-up (`start_up_warnings`, logged by
the outbox as `notify_config_warning`): without `external_url`, the engine's links
(`/api/v1/alerts?...`) reach chat channels and webhooks relative, and Alertmanager gets no
generatorURL at all (a relative one would open on Alertmanager's own host); two receivers of
one robot (same token) share its rate limit, which may surprise.

Example:
    notify:
      receivers:
        - {type: webhook, name: city-platform, url: "https://platform.example/hooks/ecowatch",
           secret: "${ECOWATCH_WEBHOOK_SECRET}"}
        - {type: dingtalk, name: duty-room, access_token: "${DINGTALK_TOKEN}",
           secret: "${DINGTALK_SECRET}"}
        - {type: alertmanager, name: alertmanager, url: "http://127.0.0.1:9093"}
      routes:
        - {severities: [critical], receivers: [duty-room], continue: true}
      default_receivers: [city-platform, alertmanager]
      retry: {initial_delay: PT1S, max_delay: PT5M, max_age: P1D}
      max_digest_events: 50
      external_url: https://ecowatch.example.gov.cn
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Self

from pydantic import AnyHttpUrl, ConfigDict, Field, model_validator

from alerts.notifiers import NotifierConfig
from alerts.routing import RouteConfig
from config.types import StrictModel


class RetryConfig(StrictModel):
    initial_delay: timedelta = Field(
        timedelta(seconds=1), gt=timedelta(0), description="Cap of the first retry's delay."
    )
    max_delay: timedelta = Field(
        timedelta(minutes=5),
        gt=timedelta(0),
        description="Cap of the exponential backoff (full jitter: each delay is random below the cap).",
    )
    max_attempts: int | None = Field(
        None, ge=1, description="Attempts before a delivery is marked failed; unbounded within max_age."
    )
    max_age: timedelta = Field(
        timedelta(days=1),
        gt=timedelta(0),
        description="A delivery still failing this long after its event was written is marked failed.",
    )

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before attempt `attempts + 1`: full jitter below the capped exponential, or the
        receiver's Retry-After if longer."""
        cap = min(
            self.max_delay.total_seconds(), self.initial_delay.total_seconds() * 2 ** min(attempts - 1, 40)
        )
        delay = rng.uniform(0.0, cap)
        return max(delay, retry_after) if retry_after is not None else delay

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must not be shorter than initial_delay")
        return self


class NotifyConfig(StrictModel):
    # A validation error must not echo the input: it holds secrets.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    receivers: tuple[NotifierConfig, ...] = Field((), description="The channels notifications go to.")
    routes: tuple[RouteConfig, ...] = Field((), description="Tried in order; the first match wins.")
    default_receivers: tuple[str, ...] | None = Field(
        None, description="Receivers of events no route matches; every receiver when unset."
    )
    retry: RetryConfig = Field(RetryConfig(), description="Backoff and budget of failing deliveries.")
    max_digest_events: int = Field(
        50,
        ge=2,
        le=1000,
        description="Most events in one digest (a channel may split it into parts to fit its size "
        "limit); more go in the next.",
    )
    poll_interval: timedelta = Field(
        timedelta(seconds=1),
        gt=timedelta(0),
        description="How often the alert database is read for new events when nobody wakes the outbox.",
    )
    external_url: AnyHttpUrl | None = Field(
        None,
        description="Public base URL of this ecowatch; the relative links of events (`/api/v1/alerts?...`) "
        "are made absolute with it in every message.",
    )
    retention: timedelta = Field(
        timedelta(days=30), gt=timedelta(0), description="Finished deliveries are kept this long for the API."
    )

    @model_validator(mode="after")
    def _names(self) -> Self:
        names = [receiver.name for receiver in self.receivers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"receiver names must be unique: {duplicates}")
        known = set(names)
        for index, route in enumerate(self.routes):
            unknown = sorted(set(route.receivers) - known)
            if unknown:
                raise ValueError(f"routes.{index}.receivers: no receiver named {unknown}")
        unknown = sorted(set(self.default_receivers or ()) - known)
        if unknown:
            raise ValueError(f"default_receivers: no receiver named {unknown}")
        return self

    def start_up_warnings(self) -> list[tuple[str, str]]:
        """(receiver names, problem) for what loads but will not work as meant; see the docstring."""
        warnings: list[tuple[str, str]] = []
        if self.external_url is None and self.receivers:
            names = ", ".join(r.name for r in self.receivers)
            warnings.append(
                (names, "external_url is not set: links in messages stay relative to this ecowatch")
            )
            managers = ", ".join(r.name for r in self.receivers if r.type == "alertmanager")
            if managers:
                warnings.append((managers, "external_url is not set: alerts go without generatorURL"))
        robots: dict[tuple[str, str, str], list[str]] = {}
        for receiver in self.receivers:
            if receiver.type == "dingtalk":
                token = receiver.access_token.get_secret_value()
                robots.setdefault((receiver.type, str(receiver.base_url), token), []).append(receiver.name)
            elif receiver.type == "wecom":
                token = receiver.webhook_key.get_secret_value()
                robots.setdefault((receiver.type, str(receiver.base_url), token), []).append(receiver.name)
        for shared in robots.values():
            if len(shared) > 1:
                warnings.append((", ".join(shared), "one robot: its rate limit is shared between these"))
        return warnings

    def receiver(self, name: str) -> NotifierConfig:
        """The receiver of that name; KeyError if there is none."""
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(name)
