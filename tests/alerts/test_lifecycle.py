"""The alert state machine alone: pending, hysteresis, flap damping and reminders on scripted verdicts."""

from __future__ import annotations

from alerts.lifecycle import AlertRecord, AlertState, Policy, Step, advance, observe, remind
from alerts.rules.base import Condition

MIN = 60_000_000_000
F, C, H = Condition.FIRING, Condition.CLEAR, Condition.HOLD


def _record() -> AlertRecord:
    return AlertRecord("a" * 16, "rule", "compliance_drop", {"rule": "rule"}, {"severity": "warning"})


def _policy(**overrides: int) -> Policy:
    values = {"pending_ns": 0, "recovery_samples": 1, "recovery_ns": 0, "renotify_ns": 0, "min_refire_ns": 0}
    values.update(overrides)
    return Policy(**values)


def _run(
    record: AlertRecord, policy: Policy, script: list[tuple[int, Condition]]
) -> list[tuple[int, Step, str | None]]:
    """Feed (minute, verdict) pairs, one new sample each; returns (minute, step, notify) of every transition."""
    out: list[tuple[int, Step, str | None]] = []
    for minute, condition in script:
        for t in observe(record, condition, minute * MIN, minute * MIN, policy):
            out.append((minute, t.step, t.notify))
    return out


def test_pending_fires_only_after_for() -> None:
    """A condition must hold for `for` before firing; one that clears sooner is cancelled without a notice."""
    record, policy = _record(), _policy(pending_ns=10 * MIN)
    assert _run(record, policy, [(0, F), (5, F), (8, C)]) == [
        (0, Step.PENDING, None),
        (8, Step.CANCELLED, None),
    ]
    assert record.state is AlertState.OK
    steps = _run(record, policy, [(20, F), (25, F), (30, F)])
    assert steps == [(20, Step.PENDING, None), (30, Step.FIRING, "firing")]
    assert record.since_ns == 20 * MIN


def test_pending_fires_by_time_alone() -> None:
    """`advance` fires a pending alert when its time has come, with no new verdict."""
    record, policy = _record(), _policy(pending_ns=10 * MIN)
    _run(record, policy, [(0, F)])
    assert advance(record, 9 * MIN, policy) == []
    assert [t.step for t in advance(record, 10 * MIN, policy)] == [Step.FIRING]


def test_recovery_needs_consecutive_clear_samples_and_time() -> None:
    """Hysteresis: N clear samples in a row and M minutes; a firing or in-band verdict restarts the count."""
    record, policy = _record(), _policy(recovery_samples=3, recovery_ns=30 * MIN)
    script = [(0, F), (10, C), (20, C), (30, F), (40, C), (50, H), (60, C), (70, C), (80, C)]
    assert [s for s in _run(record, policy, script) if s[1] is not Step.PENDING] == [
        (0, Step.FIRING, "firing")
    ]
    assert record.state is AlertState.FIRING
    assert record.clear_samples == 3
    assert [t.step for t in advance(record, 89 * MIN, policy)] == []
    resolved = advance(record, 90 * MIN, policy)
    assert [(t.step, t.notify) for t in resolved] == [(Step.RESOLVED, "resolved")]
    assert record.ended_ns == 60 * MIN  # when it came back within bounds, not when that was confirmed


def test_repeated_verdict_on_the_same_sample_is_counted_once() -> None:
    """Recovery counts new samples, not evaluations of the same one."""
    record, policy = _record(), _policy(recovery_samples=2)
    _run(record, policy, [(0, F)])
    observe(record, C, 10 * MIN, 10 * MIN, policy)
    observe(record, C, 10 * MIN, 11 * MIN, policy)
    assert record.state is AlertState.FIRING
    assert [t.step for t in observe(record, C, 20 * MIN, 20 * MIN, policy)] == [Step.RESOLVED]


def test_flapping_identity_sends_one_firing_notice_per_interval() -> None:
    """Within min_refire_interval of a resolved notice, firing is damped; a quick recovery sends nothing."""
    record, policy = _record(), _policy(min_refire_ns=30 * MIN)
    script = [(0, F), (5, C), (10, F), (15, C), (20, F)]
    notified = [(m, s, n) for m, s, n in _run(record, policy, script) if s is not Step.PENDING]
    assert notified == [
        (0, Step.FIRING, "firing"),
        (5, Step.RESOLVED, "resolved"),
        (10, Step.DAMPED, None),
        (15, Step.RESOLVED, None),
        (20, Step.DAMPED, None),
    ]
    assert [(t.step, t.notify) for t in advance(record, 35 * MIN, policy)] == [(Step.RELEASED, "firing")]
    assert [(t.step, t.notify) for t in observe(record, C, 40 * MIN, 40 * MIN, policy)] == [
        (Step.RESOLVED, "resolved")
    ]


def test_reminders_follow_the_interval_and_stop_when_acknowledged() -> None:
    """A notified firing alert is reminded every renotify interval unless acknowledged; never without one."""
    record, policy = _record(), _policy(renotify_ns=60 * MIN)
    _run(record, policy, [(0, F)])
    record.last_notified_ns = 0
    assert remind(record, 59 * MIN, policy) is None
    reminder = remind(record, 60 * MIN, policy)
    assert reminder is not None
    assert (reminder.step, reminder.notify, reminder.reminder) == (Step.REMINDER, "firing", True)
    record.acked_by = "duty officer"
    assert remind(record, 120 * MIN, policy) is None
    assert remind(_record(), 120 * MIN, _policy()) is None


def test_new_episode_clears_the_acknowledgement() -> None:
    """An acknowledged alert that resolves and fires again is a new episode, not acknowledged."""
    record, policy = _record(), _policy()
    _run(record, policy, [(0, F)])
    record.acked_by = "duty officer"
    _run(record, policy, [(10, C), (20, F)])
    assert record.state is AlertState.FIRING
    assert record.acked_by is None
    assert record.since_ns == 20 * MIN
