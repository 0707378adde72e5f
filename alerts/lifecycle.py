"""The life of one alert identity: ok → pending → firing → resolved (→ pending again ...).

Pure state machine over an `AlertRecord`, driven by the engine with the rule's `Condition` and
the instant, in station time (event time of the readings; see `alerts.rules.base.Scope`):

- ok/resolved + FIRING → pending (a new episode: `since_ns`, acknowledgement cleared).
- pending: firing once the condition has held for the rule's `for`; any finding that is not
  FIRING cancels it (back to ok, no notification).
- firing + CLEAR: recovery progress (new samples counted via `observed_ns`, time since the
  first clear one); resolved when `recovery.samples` and `recovery.duration` are both met.
  FIRING or HOLD (the hysteresis band) resets the progress.
- Flap damping: an identity that fires again within `min_refire_interval` of its last resolved
  notice fires without a notice (DAMPED); the notice is RELEASED when the interval is over and it
  still fires; if it resolves first, neither the firing nor the resolved notice is sent. So an
  identity sends at most one firing notice per interval however often it flips.
- Severity (`change_severity`): a firing alert whose finding says it is now worse (or better)
  escalates (de-escalates): the same alert, one transition, notified when its firing was.
- Reminders (`remind`, wall clock): while firing, notified and not acknowledged, every
  `renotify_interval`.

Each step is returned as a `Transition`; the engine records every one in the history and turns
those with `notify` into notification events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal

from alerts.rules.base import Condition


class AlertState(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Step(StrEnum):
    """A recorded transition; the `transition` column of the history."""

    PENDING = "pending"
    CANCELLED = "cancelled"
    FIRING = "firing"
    DAMPED = "damped"
    RELEASED = "released"
    ESCALATED = "escalated"
    DEESCALATED = "deescalated"
    RESOLVED = "resolved"
    REMINDER = "reminder"
    UNSILENCED = "unsilenced"
    ACKNOWLEDGED = "acknowledged"
    RETIRED = "retired"


ACTIVE: frozenset[AlertState] = frozenset({AlertState.PENDING, AlertState.FIRING})


@dataclass(frozen=True, slots=True)
class Policy:
    """A rule's lifecycle settings, in ns; 0 disables reminders and flap damping."""

    pending_ns: int
    recovery_samples: int
    recovery_ns: int
    renotify_ns: int
    min_refire_ns: int


@dataclass(frozen=True, slots=True)
class Transition:
    """One step: from which state to which, when (station time; wall clock for reminders)."""

    step: Step
    before: AlertState
    after: AlertState
    at_ns: int
    notify: Literal["firing", "resolved"] | None = None
    reminder: bool = False
    previous_severity: str | None = None  # an escalation's or de-escalation's severity before it


@dataclass(slots=True)
class AlertRecord:
    """The state of one alert identity; one row of the `alerts` table.

    Station-time fields: since_ns (episode start, `starts_at`), fired_ns, clear_since_ns,
    last_sample_ns, ended_ns (`ends_at`: when the condition cleared), hold_until_ns,
    last_resolved_notice_ns. Wall-clock fields: last_notified_ns, acked_ns, updated_ns.
    `sequence` counts the identity's notifications for ever: event keys are `<alert_id>:<n>`.
    `cause` is the last FIRING finding (what firing notices show), `current` the last finding
    while active (what the resolved notice shows), both as JSON.
    """

    alert_id: str
    rule: str
    kind: str
    identity: dict[str, str]
    labels: dict[str, str]
    station_id: str | None = None
    parameter: str | None = None
    state: AlertState = AlertState.OK
    since_ns: int | None = None
    fired_ns: int | None = None
    clear_since_ns: int | None = None
    clear_samples: int = 0
    last_sample_ns: int | None = None
    ended_ns: int | None = None
    notified: bool = False
    hold_until_ns: int | None = None
    silenced: bool = False
    last_notified_ns: int | None = None
    last_resolved_notice_ns: int | None = None
    sequence: int = 0
    acked_by: str | None = None
    acked_ns: int | None = None
    ack_comment: str | None = None
    cause: dict[str, Any] = field(default_factory=dict)
    current: dict[str, Any] = field(default_factory=dict)
    updated_ns: int = 0
    # Station time since which a firing alert's findings have been milder than its severity.
    milder_since_ns: int | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def observe(
    record: AlertRecord, condition: Condition, observed_ns: int | None, at_ns: int, policy: Policy
) -> list[Transition]:
    """Apply a rule's verdict at station time `at_ns`, then whatever time allows (`advance`)."""
    out: list[Transition] = []
    new_sample = observed_ns is not None and (
        record.last_sample_ns is None or observed_ns > record.last_sample_ns
    )
    if condition is Condition.FIRING:
        if record.state in (AlertState.OK, AlertState.RESOLVED):
            before = record.state
            _new_episode(record, at_ns)
            out.append(Transition(Step.PENDING, before, AlertState.PENDING, at_ns))
        record.clear_since_ns = None
        record.clear_samples = 0
    elif record.state is AlertState.PENDING:
        record.state = AlertState.OK
        record.since_ns = None
        out.append(Transition(Step.CANCELLED, AlertState.PENDING, AlertState.OK, at_ns))
    elif record.state is AlertState.FIRING:
        if condition is Condition.CLEAR:
            if record.clear_since_ns is None:
                # Recovery began with the first clear sample (not later, when a tick notices it),
                # and never before the alert fired.
                began = at_ns if observed_ns is None else min(at_ns, observed_ns)
                record.clear_since_ns = max(began, record.fired_ns or began)
            if new_sample:
                record.clear_samples += 1
        else:
            record.clear_since_ns = None
            record.clear_samples = 0
    if new_sample:
        record.last_sample_ns = observed_ns
    out.extend(advance(record, at_ns, policy))
    return out


def advance(record: AlertRecord, at_ns: int, policy: Policy) -> list[Transition]:
    """Time-driven steps at station time `at_ns`: pending → firing, held notice, recovery."""
    out: list[Transition] = []
    pending = record.state is AlertState.PENDING and record.since_ns is not None
    if pending and at_ns - (record.since_ns or 0) >= policy.pending_ns:
        out.append(_fire(record, at_ns, policy))
    if record.state is not AlertState.FIRING:
        return out
    if not record.notified and record.hold_until_ns is not None and at_ns >= record.hold_until_ns:
        record.notified = True
        record.hold_until_ns = None
        out.append(Transition(Step.RELEASED, AlertState.FIRING, AlertState.FIRING, at_ns, "firing"))
    if (
        record.clear_since_ns is not None
        and record.clear_samples >= policy.recovery_samples
        and at_ns - record.clear_since_ns >= policy.recovery_ns
    ):
        record.state = AlertState.RESOLVED
        record.ended_ns = record.clear_since_ns
        notify: Literal["resolved"] | None = "resolved" if record.notified else None
        if record.notified:
            record.last_resolved_notice_ns = at_ns
        record.hold_until_ns = None
        out.append(Transition(Step.RESOLVED, AlertState.FIRING, AlertState.RESOLVED, at_ns, notify))
    return out


def remind(record: AlertRecord, now_ns: int, policy: Policy) -> Transition | None:
    """A reminder when a notified, unacknowledged firing alert is due one (wall clock)."""
    if (
        record.state is not AlertState.FIRING
        or not record.notified
        or record.acked_by is not None
        or policy.renotify_ns <= 0
        or record.last_notified_ns is None
        or now_ns - record.last_notified_ns < policy.renotify_ns
    ):
        return None
    return Transition(Step.REMINDER, AlertState.FIRING, AlertState.FIRING, now_ns, "firing", reminder=True)


SEVERITY_RANK: Final = {"info": 0, "warning": 1, "critical": 2}


def change_severity(record: AlertRecord, severity: str, at_ns: int) -> Transition | None:
    """Set the alert's severity; the escalation or de-escalation step of a firing alert, if it changed.

    A pending or resolved alert takes the new severity silently (its firing notice will carry it).
    """
    before = record.labels.get("severity")
    if before == severity:
        return None
    record.labels["severity"] = severity
    if record.state is not AlertState.FIRING or before is None:
        return None
    step = Step.ESCALATED if SEVERITY_RANK[severity] > SEVERITY_RANK.get(before, 0) else Step.DEESCALATED
    return Transition(
        step, AlertState.FIRING, AlertState.FIRING, at_ns, "firing" if record.notified else None
    )


def _new_episode(record: AlertRecord, at_ns: int) -> None:
    record.state = AlertState.PENDING
    record.since_ns = at_ns
    record.fired_ns = None
    record.ended_ns = None
    record.clear_since_ns = None
    record.clear_samples = 0
    record.notified = False
    record.hold_until_ns = None
    record.acked_by = record.ack_comment = None
    record.acked_ns = None


def _fire(record: AlertRecord, at_ns: int, policy: Policy) -> Transition:
    record.state = AlertState.FIRING
    record.fired_ns = at_ns
    last = record.last_resolved_notice_ns
    if policy.min_refire_ns > 0 and last is not None and at_ns - last < policy.min_refire_ns:
        record.notified = False
        record.hold_until_ns = last + policy.min_refire_ns
        return Transition(Step.DAMPED, AlertState.PENDING, AlertState.FIRING, at_ns)
    record.notified = True
    return Transition(Step.FIRING, AlertState.PENDING, AlertState.FIRING, at_ns, "firing")
