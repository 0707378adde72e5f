"""The alert engine: readings in, rule findings, alert lifecycles, history and notification events out.

Three inputs drive it. `ingest(readings, now)` takes readings from the readings log in log order
(as a sink does): per station in event-time order, each reading of a judged kind (`data_kinds`,
real-time by default) updates the station's period values (`alerts.station_values`: the hot
path, O(1) per reading), and readings of the parameters a window rule needs (water level) are
admitted to the station's window as well (new, late, duplicate or too late: `alerts.windows`).
At each new event time the station rules are evaluated at that time: the STREAM rules
(water_quality, data_availability) from the period values, the others from the window.
`judge_periods(figures, now)` judges the PERIOD rules (regional_period) on the regions' period
figures after each daily assessment. `tick(now)` does the time-driven work: silent stations
and regional roll-ups at now; pending → firing, recovery by time and held flap-damped notices of
station alerts at the station's time (now, but at most one report interval past its newest
reading, so a backlog replaying after downtime is judged on its own clock rather than fired by
the wall clock); reminders, and the firing notice of an alert whose silence ended. A station's
values change only with its readings, so ticks do not re-run the other station rules (a rolling
window therefore slides with the readings, not between them). The engine also keeps its own
database: `housekeep(now)` prunes history, samples and silences past their retention. The
scheduler (`alerts.scheduler`) calls `tick` and `housekeep`, through the service; the daily
assessment is `alerts.assessment.DailyAssessment`'s.

Speed: the default rules cost a dict lookup and a few additions per reading and one judgement
per station and event time (`bench/alerts_engine.py`); samples are stored only for the window
rules' parameters, or for every reading with `keep_samples` (the daily assessment reads them
when the daemon has no readings store to read).

Every change of one call is one transaction of the alert database (`alerts.store`): windows,
alert rows, history rows and notification events commit together. If the transaction fails the
in-memory state is reloaded from the database and the error propagates, so the caller retries
the same batch against the state the database holds. Replaying readings already evaluated finds
them in the window (DUPLICATE) and changes nothing.

Notification events (`alerts.events.AlertEvent`): firing (and released, unsilenced), resolved
(when the firing was notified) and reminders, keyed `<alert_id>:<sequence>`. Silenced events are
written with `silenced: true` (see `alerts.silences`); acknowledged alerts get no reminders but
still resolve and fire again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import orjson
import structlog
from prometheus_client import Counter as PromCounter

from alerts.classify import classify
from alerts.config import AlertsConfig, RuleDefaults
from alerts.events import AlertEvent
from alerts.incidents.feed import IncidentFeed
from alerts.lifecycle import (
    SEVERITY_RANK,
    AlertRecord,
    AlertState,
    Policy,
    Step,
    Transition,
    advance,
    change_severity,
    observe,
    remind,
)
from alerts.notices import build_event, labels_of
from alerts.rules import Rule, make_rule
from alerts.rules.base import (
    Condition,
    Finding,
    PointStatus,
    RuleConfigBase,
    Scope,
    View,
)
from alerts.silences import Silence, silenced_by
from alerts.station_values import StationValues
from alerts.store import AlertStore
from alerts.windows import Admission, Evidence, Sample, StationWindow
from config.registry import Registry, Station
from config.standards import Standard, default_standard, load_standard
from config.times import ns, to_ns
from ingest.model import DATA_KIND_TAG, DataFlag, Reading

log = structlog.get_logger(__name__)

READINGS: Final = PromCounter(
    "ecowatch_alert_readings_total", "Readings the alert engine received, by admission.", ["admission"]
)
TRANSITIONS: Final = PromCounter(
    "ecowatch_alert_transitions_total",
    "Alert transitions recorded, by rule and transition.",
    ["rule", "transition"],
)
EVENTS: Final = PromCounter(
    "ecowatch_alert_events_total",
    "Notification events written, by status and silenced.",
    ["status", "silenced"],
)
# The database keeps samples at least this long, whatever the rules' windows: the daily
# assessment needs the whole previous local day at its morning run.
MIN_STORED_NS: Final = 2 * 86400 * 1_000_000_000
UNKNOWN_STATION: Final = "unknown_station"
OTHER_KIND: Final = "other_kind"  # an hourly, daily or lab value where only real-time ones are judged
DAY_NS: Final = 86400 * 1_000_000_000


class NotActiveError(ValueError):
    """The alert is neither pending nor firing."""


def policy_of(config: RuleConfigBase, defaults: RuleDefaults) -> Policy:
    recovery = config.recovery or defaults.recovery
    return Policy(
        pending_ns=ns(config.pending if config.pending is not None else defaults.pending),
        recovery_samples=recovery.samples,
        recovery_ns=ns(recovery.duration),
        renotify_ns=ns(
            config.renotify_interval if config.renotify_interval is not None else defaults.renotify_interval
        ),
        min_refire_ns=ns(
            config.min_refire_interval
            if config.min_refire_interval is not None
            else defaults.min_refire_interval
        ),
    )


def alert_id_of(identity: Mapping[str, str]) -> str:
    """A stable id from the identity labels (never from values)."""
    return hashlib.sha256(orjson.dumps(dict(identity), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class AlertEngine:
    def __init__(
        self,
        config: AlertsConfig,
        registry: Registry,
        store: AlertStore,
        *,
        started: datetime,
        standard: Standard | None = None,
        keep_samples: bool = True,
        not_raised: Iterable[str] = ("do", "sd"),
        watched: Callable[[str], bool] | None = None,
        regions: bool = True,
    ) -> None:
        """`watched`: the stations whose silence this engine judges on its ticks (default every
        station of the registry); a cluster partition's engine watches the stations whose
        messages come to its partition. `regions=False` leaves out the REGION rules, which need
        every station of a region (an engine that sees only part of them would judge wrongly)."""
        self.config = config
        self.registry = registry
        self._watched = [sid for sid in registry if watched is None or watched(sid)]
        self.store = store
        self.standard = standard or (
            load_standard(config.standard) if config.standard else default_standard()
        )
        self.rules: list[Rule] = [make_rule(c) for c in config.rules]
        self._policies = {r.config.name: policy_of(r.config, config.defaults) for r in self.rules}
        self._station_rules = [r for r in self.rules if r.scope in (Scope.STATION, Scope.CLOCK)]
        self._stream_rules = [r for r in self.rules if r.scope is Scope.STREAM]
        self._region_rules = [r for r in self.rules if r.scope is Scope.REGION] if regions else []
        self._period_rules = [r for r in self.rules if r.scope is Scope.PERIOD]
        self._windowed = _windowed_parameters(self._station_rules + self._region_rules)
        self._keep_samples = keep_samples
        self._kinds = frozenset(config.data_kinds)
        self._not_raised = frozenset(not_raised)
        # Incidents follow an event along the river network, when the registry has one.
        self.incidents: IncidentFeed | None = None
        self.started_ns = to_ns(started)
        self._lateness_ns = ns(config.allowed_lateness)
        # Memory holds what the windows and the recognition of late repeats need; the database
        # also what the daily assessment needs (`stored_ns`, pruned by housekeeping).
        self.retention_ns = max((_window_ns(r.config) for r in self.rules), default=0) + self._lateness_ns
        self.stored_ns = max(self.retention_ns, MIN_STORED_NS + self._lateness_ns)
        self.counts: Counter[str] = Counter()
        self.lock = threading.RLock()
        self._stale = True
        self.windows: dict[str, StationWindow] = {}
        self.values: dict[str, StationValues] = {}
        self.alerts: dict[str, AlertRecord] = {}
        self.silences: list[Silence] = []
        self._by_station: dict[str | None, set[str]] = {}
        # Pure functions of configuration, memoised: the hot path asks them per reading.
        self._ids: dict[tuple[str, str | None, str | None, tuple[str, str] | None], str] = {}
        self._applies: dict[tuple[str, str], bool] = {}
        self._plans: dict[str, tuple[list[Rule], list[Rule]]] = {}
        with self.lock:
            self._load()
            with self._transaction():
                self._retire_orphans(self.started_ns)

    # --- inputs ----------------------------------------------------------------------------------
    def ingest(self, readings: Sequence[Reading], now: datetime) -> None:
        """Admit readings and evaluate each station at each new event time, in one transaction."""
        now_ns = to_ns(now)
        by_station: dict[str, list[Reading]] = {}
        admissions: Counter[str] = Counter()
        windows = self.windows
        for reading in readings:
            items = by_station.get(reading.station_id)
            if items is None:
                if reading.station_id not in windows:
                    admissions[UNKNOWN_STATION] += 1
                    continue
                items = by_station[reading.station_id] = []
            items.append(reading)
        if by_station:
            with self.lock, self._transaction():
                # Samples and latest values are written once per batch (the newest latest value
                # of each parameter wins), in the same transaction as the alert changes.
                samples: list[tuple[str, str, Sample]] = []
                latest: dict[tuple[str, str], tuple[Sample, Sample | None]] = {}
                judged_kind: dict[int, bool] = {}  # by id of a tag tuple: readings of a message share one
                touched: list[StationValues] = []
                for station_id, items in by_station.items():
                    items.sort(key=_time_of)
                    window = windows[station_id]
                    values = self.values[station_id]
                    for time_ns, group in itertools.groupby(items, key=_time_of):
                        fresh = self._admit(
                            window,
                            values,
                            group,
                            admissions=admissions,
                            samples=samples,
                            latest=latest,
                            judged_kind=judged_kind,
                        )
                        if fresh:
                            self._evaluate_station(station_id, time_ns, now_ns, tick=False)
                    if values.changed:
                        values.changed = False
                        touched.append(values)
                self.store.save_station_values((v.station_id, v.to_json()) for v in touched)
                if self.incidents is not None:
                    self._write_incident_events(self.incidents.flush(), now_ns)
                self.store.save_samples(samples)
                self.store.save_latest_many(
                    (sid, parameter, sample, normal) for (sid, parameter), (sample, normal) in latest.items()
                )
        # Counted once the batch committed (a retried batch is counted once).
        with self.lock:
            for what, count in admissions.items():
                self.counts[what] += count
                READINGS.labels(what).inc(count)

    def judge_periods(self, figures_for: Callable[[Any], Sequence[Any]], now: datetime) -> None:
        """Judge the PERIOD rules on their regions' figures (`figures_for(rule)`), after an assessment."""
        now_ns = to_ns(now)
        with self.transaction():
            for rule in self._period_rules:
                touched: set[str] = set()
                for finding in rule.judge(figures_for(rule)):  # type: ignore[attr-defined]
                    touched.add(self._apply(rule, finding, finding.observed_ns or now_ns, now_ns))
                held = {
                    a for a in self._by_station.get(None, set()) if self.alerts[a].rule == rule.config.name
                }
                self._advance_rest(held - touched, now_ns, now_ns)

    def tick(self, now: datetime) -> None:
        """The time-driven evaluation; see the module docstring."""
        now_ns = to_ns(now)
        with self.lock, self._transaction():
            for station_id in self._watched:
                station = self.registry[station_id]
                watermark = self.windows[station_id].watermark_ns
                interval_ns = station.report_interval_s * 1_000_000_000
                as_of = now_ns if watermark is None else max(watermark, min(now_ns, watermark + interval_ns))
                self._evaluate_station(station_id, as_of, now_ns, tick=True)
            self._evaluate_regions(now_ns)
            for record in list(self.alerts.values()):
                self._remind(record, now_ns)
            if self.incidents is not None:
                self._write_incident_events(self.incidents.tick(now_ns), now_ns)

    def housekeep(self, now: datetime) -> dict[str, int]:
        """Prune history, assessments and silences past the retention, and samples past the windows."""
        now_ns = to_ns(now)
        with self.transaction():
            samples_before = {
                sid: w.watermark_ns - self.stored_ns
                for sid, w in self.windows.items()
                if w.watermark_ns is not None
            }
            cutoff = now_ns - ns(self.config.history_retention)
            counts = self.store.prune(history_before_ns=cutoff, samples_before_ns=samples_before)
            self.silences = [s for s in self.silences if s.ends_ns >= cutoff]
        log.info("alert_housekeeping_done", **counts)
        return counts

    def check(self) -> None:
        """Readiness: the alert database answers (raises sqlite3.Error when it does not)."""
        with self.lock:
            self.store.check()

    # --- operators ------------------------------------------------------------------------------
    def acknowledge(self, alert_id: str, by: str, comment: str | None, now: datetime) -> AlertRecord:
        """Acknowledge an active alert: no more reminders; it still resolves and fires again.

        Raises KeyError for an unknown alert and NotActiveError for one that is not pending or firing.
        """
        now_ns = to_ns(now)
        with self.transaction():
            record = self.alerts[alert_id]
            if not record.active:
                raise NotActiveError(f"alert {alert_id} is {record.state}, not pending or firing")
            record.acked_by, record.acked_ns, record.ack_comment = by, now_ns, comment
            record.updated_ns = now_ns
            self.store.add_history(
                record,
                transition=Step.ACKNOWLEDGED,
                from_state=record.state,
                to_state=record.state,
                at_ns=now_ns,
                recorded_ns=now_ns,
                detail={"by": by, "comment": comment, "labels": record.labels},
            )
            self.store.save_alert(record)
            log.info("alert_acknowledged", alert_id=alert_id, by=by)
            return record

    def add_silence(self, silence: Silence) -> None:
        with self.transaction():
            self.store.save_silence(silence)
            self.silences.append(silence)
        log.info("silence_added", silence_id=silence.id, by=silence.created_by, reason=silence.reason)

    def expire_silence(self, silence_id: str, now: datetime) -> Silence:
        """End a silence now (kept for the record); KeyError when there is none with this id."""
        now_ns = to_ns(now)
        with self.transaction():
            index = next((i for i, s in enumerate(self.silences) if s.id == silence_id), None)
            if index is None:
                raise KeyError(silence_id)
            old = self.silences[index]
            expired = dataclasses.replace(old, ends_ns=min(old.ends_ns, max(now_ns, old.starts_ns)))
            self.store.save_silence(expired)
            self.silences[index] = expired
        log.info("silence_expired", silence_id=silence_id)
        return expired

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The engine's lock and one database transaction (reloading the state if it fails)."""
        with self.lock, self._transaction():
            yield

    # --- evaluation ------------------------------------------------------------------------------
    def _admit(
        self,
        window: StationWindow,
        values: StationValues,
        readings: Iterator[Reading],
        *,
        admissions: Counter[str],
        samples: list[tuple[str, str, Sample]],
        latest: dict[tuple[str, str], tuple[Sample, Sample | None]],
        judged_kind: dict[int, bool],
    ) -> bool:
        """Count one event time's readings into the period values and, where a rule needs it, the window."""
        fresh = False
        station_id = window.station_id
        windowed = self._windowed
        keep_samples = self._keep_samples
        add = values.add
        offer = _ignore if self.incidents is None else self.incidents.offer
        new = old = other = 0
        last_tags: object = None
        judged = True
        for reading in readings:
            tags = reading.tags
            if tags is not last_tags:  # the readings of one message are together and share their tags
                last_tags = tags
                cached = judged_kind.get(id(tags))
                judged = judged_kind[id(tags)] = self._judged(tags) if cached is None else cached
            if not judged:
                other += 1
                continue
            parameter = reading.parameter
            if windowed is None or parameter in windowed:
                fresh = self._admit_to_window(window, reading, admissions, samples, latest) or fresh
                if add(parameter, reading.time_ns, reading.value, reading.flag, reading.below_dl):
                    offer(station_id, parameter, reading.time_ns, reading.value, reading.flag)
            elif add(parameter, reading.time_ns, reading.value, reading.flag, reading.below_dl):
                new += 1
                offer(station_id, parameter, reading.time_ns, reading.value, reading.flag)
                if keep_samples:
                    samples.append(
                        (station_id, parameter, Sample(reading.time_ns, reading.value, reading.flag))
                    )
            else:
                old += 1
        if new:
            fresh = True
            admissions[Admission.NEW] += new
            newest = values.newest_ns
            if newest is not None and (window.watermark_ns is None or newest > window.watermark_ns):
                window.watermark_ns = newest
        if old:
            admissions[Admission.DUPLICATE] += old  # or late: the period values keep no older times
        if other:
            admissions[OTHER_KIND] += other
        return fresh

    def _admit_to_window(
        self,
        window: StationWindow,
        reading: Reading,
        admissions: Counter[str],
        samples: list[tuple[str, str, Sample]],
        latest: dict[tuple[str, str], tuple[Sample, Sample | None]],
    ) -> bool:
        """Admit a reading a window rule needs; whether it is the newest of its parameter."""
        admission = window.admit(reading, self._lateness_ns)
        admissions[admission] += 1
        if admission is not Admission.NEW and admission is not Admission.LATE:
            return False
        sample = window.add(reading, admission)
        samples.append((window.station_id, reading.parameter, sample))
        if admission is Admission.LATE:
            return False
        latest[window.station_id, reading.parameter] = (sample, window.latest_normal.get(reading.parameter))
        return True

    def _judged(self, tags: tuple[tuple[str, str], ...]) -> bool:
        """Whether readings with these tags are of a kind the rules judge (`data_kinds`)."""
        for key, value in tags:
            if key == DATA_KIND_TAG:
                return value in self._kinds
        return "realtime" in self._kinds

    def _evaluate_station(self, station_id: str, at_ns: int, now_ns: int, *, tick: bool) -> None:
        touched: set[str] = set()
        rule_at = now_ns if tick else at_ns
        window_rules, stream_rules = self._plan_of(station_id)
        view = View(rule_at, self.standard, self.registry, self.windows, self.started_ns, station_id)
        for rule in window_rules:
            # A station's data change only with its readings: ticks re-evaluate the clock rules
            # (silence) and let time act on the other alerts (`advance`). A reading can only
            # clear a clock rule's alert, so without one there is nothing to evaluate.
            if rule.scope is Scope.CLOCK:
                if not tick and not self._active(rule, station_id):
                    continue
            elif tick:
                continue
            for finding in rule.evaluate(view):
                touched.add(self._apply(rule, finding, rule_at, now_ns))
        if not tick:
            # The period values change only with readings: ticks leave these alerts to `advance`.
            station, values = self.registry[station_id], self.values[station_id]
            for rule in stream_rules:
                findings = rule.judge(  # type: ignore[attr-defined]
                    station,
                    values,
                    at_ns,
                    self.standard,
                    self.config.basis,
                    quiet=not self._active(rule, station_id),
                )
                for finding in findings:
                    touched.add(self._apply(rule, finding, at_ns, now_ns))
        held = self._by_station.get(station_id)
        if held:
            self._advance_rest(held - touched, at_ns, now_ns)

    def _plan_of(self, station_id: str) -> tuple[list[Rule], list[Rule]]:
        """The window and stream rules that apply to a station (memoised: a function of configuration)."""
        plan = self._plans.get(station_id)
        if plan is None:
            kinds = self.registry[station_id].kinds
            relevant = [
                r
                for r in self._station_rules + self._stream_rules
                if self._applies_to(r, station_id) and _RULE_STATION_KIND.get(r.kind, kinds[0]) in kinds
            ]
            plan = self._plans[station_id] = (
                [r for r in relevant if r.scope is not Scope.STREAM],
                [r for r in relevant if r.scope is Scope.STREAM],
            )
        return plan

    def _active(self, rule: Rule, station_id: str) -> bool:
        """Whether the station has a pending or firing alert of a (station-wide) rule."""
        alert_id = self._ids.get((rule.config.name, station_id, None, None))
        if alert_id is None:
            alert_id = self._ids[rule.config.name, station_id, None, None] = alert_id_of(
                {"rule": rule.config.name, "station_id": station_id}
            )
        record = self.alerts.get(alert_id)
        return record is not None and record.active

    def _applies_to(self, rule: Rule, station_id: str) -> bool:
        key = (rule.config.name, station_id)
        applies = self._applies.get(key)
        if applies is None:
            applies = self._applies[key] = rule.config.applies_to(self.registry[station_id])
        return applies

    def _evaluate_regions(self, now_ns: int) -> None:
        touched: set[str] = set()
        view = View(now_ns, self.standard, self.registry, self.windows, self.started_ns)
        for rule in self._region_rules:
            for finding in rule.evaluate(view):
                touched.add(self._apply(rule, finding, now_ns, now_ns))
        self._advance_rest(self._by_station.get(None, set()) - touched, now_ns, now_ns)

    def _advance_rest(self, alert_ids: set[str], at_ns: int, now_ns: int) -> None:
        for alert_id in alert_ids:
            record = self.alerts[alert_id]
            if record.active:
                self._commit(record, advance(record, at_ns, self._policies[record.rule]), now_ns)

    def _apply(self, rule: Rule, finding: Finding, at_ns: int, now_ns: int) -> str:
        key = (rule.config.name, finding.station_id, finding.parameter, finding.group)
        alert_id = self._ids.get(key)
        if alert_id is None:
            alert_id = self._ids[key] = alert_id_of(_identity(rule, finding))
        record = self.alerts.get(alert_id)
        if record is None:
            if finding.condition is not Condition.FIRING:
                return alert_id
            record = AlertRecord(
                alert_id,
                rule.config.name,
                rule.kind,
                _identity(rule, finding),
                labels_of(rule.config, rule.kind, finding, self.registry),
                station_id=finding.station_id,
                parameter=finding.parameter,
            )
            self._remember(record)
        if not record.active and finding.condition is not Condition.FIRING:
            return alert_id
        severity = self._severity(rule, record, finding, at_ns)
        was_firing = record.state is AlertState.FIRING
        if severity is not None and not was_firing:
            change_severity(record, severity, at_ns)  # silently: the firing notice will carry it
        snapshot = _snapshot(finding)
        record.current = snapshot
        if finding.condition is Condition.FIRING:
            record.cause = snapshot
        transitions = observe(
            record, finding.condition, finding.observed_ns, at_ns, self._policies[record.rule]
        )
        if severity is not None and was_firing and record.state is AlertState.FIRING:
            step = change_severity(record, severity, at_ns)
            if step is not None:
                transitions.append(step)
        self._commit(record, transitions, now_ns, save=True)
        return alert_id

    def _severity(self, rule: Rule, record: AlertRecord, finding: Finding, at_ns: int) -> str | None:
        """A firing finding's severity: critical once the alert has fired `critical_after`; milder
        only once the milder findings have lasted `deescalate_after` (no flapping on a class limit)."""
        if finding.severity is None or finding.condition is not Condition.FIRING:
            return None
        severity: str = finding.severity
        firing = record.state is AlertState.FIRING
        after = getattr(rule.config, "critical_after", None)
        if (
            after is not None
            and firing
            and record.since_ns is not None
            and at_ns - record.since_ns >= ns(after)
        ):
            severity = "critical"
        current = record.labels.get("severity", severity)
        if firing and SEVERITY_RANK[severity] < SEVERITY_RANK.get(current, 0):
            hold = getattr(rule.config, "deescalate_after", None)
            if record.milder_since_ns is None:
                record.milder_since_ns = at_ns
            if hold is not None and at_ns - record.milder_since_ns < ns(hold):
                return current
        record.milder_since_ns = None
        return severity

    def _remind(self, record: AlertRecord, now_ns: int) -> None:
        if record.state is not AlertState.FIRING or not record.notified:
            return
        silenced = self._silence_of(record, now_ns) is not None
        if record.silenced and not silenced:
            step = Transition(Step.UNSILENCED, AlertState.FIRING, AlertState.FIRING, now_ns, "firing")
            self._commit(record, [step], now_ns)
        elif not silenced:
            reminder = remind(record, now_ns, self._policies[record.rule])
            if reminder is not None:
                self._commit(record, [reminder], now_ns)

    # --- recording -------------------------------------------------------------------------------
    def _commit(
        self, record: AlertRecord, transitions: list[Transition], now_ns: int, *, save: bool = False
    ) -> None:
        """Record the transitions (history, events) and store the record if anything changed."""
        for transition in transitions:
            key = None
            if transition.notify is not None:
                event = self._event(record, transition, now_ns)
                if self.store.add_event(event, now_ns):
                    key = event.key
                    EVENTS.labels(event.status, str(event.silenced).lower()).inc()
            detail = record.cause if transition.notify == "firing" else record.current
            self.store.add_history(
                record,
                transition=transition.step,
                from_state=transition.before,
                to_state=transition.after,
                at_ns=transition.at_ns,
                recorded_ns=now_ns,
                detail={**detail, "labels": record.labels},
                event_key=key,
            )
            TRANSITIONS.labels(record.rule, transition.step).inc()
            # Notices are lifecycle an operator cares about; pending and cancelled steps are routine.
            (log.info if transition.notify else log.debug)(
                f"alert_{transition.step}",
                alert_id=record.alert_id,
                rule=record.rule,
                station_id=record.station_id,
                parameter=record.parameter,
                event_key=key,
            )
        if transitions or save:
            record.updated_ns = now_ns
            self.store.save_alert(record)

    def _write_incident_events(self, events: list[AlertEvent], now_ns: int) -> None:
        """The incident threads' events, in the batch's transaction, with the tracker's state."""
        assert self.incidents is not None
        for each in events:
            silenced = silenced_by(self.silences, each.labels, now_ns) is not None
            event = dataclasses.replace(each, silenced=True) if silenced else each
            if self.store.add_event(event, now_ns):
                EVENTS.labels(event.status, str(event.silenced).lower()).inc()
                log.info(
                    f"incident_{event.annotations.get('change', event.status)}",
                    incident_id=event.alert_id,
                    parameter=event.parameter,
                    event_key=event.key,
                )
        if self.incidents.changed:
            self.store.save_incident_state(self.incidents.state())
            self.incidents.changed = False

    def _event(self, record: AlertRecord, transition: Transition, now_ns: int) -> AlertEvent:
        silence = self._silence_of(record, now_ns)
        record.sequence += 1
        record.silenced = silence is not None
        if transition.notify == "firing":
            record.last_notified_ns = now_ns
        station = self.registry.get(record.station_id) if record.station_id is not None else None
        status = None if station is None else self.station_status(station, transition.at_ns)
        return build_event(record, transition, station=station, silence=silence, status=status)

    def _silence_of(self, record: AlertRecord, now_ns: int) -> Silence | None:
        return silenced_by(self.silences, record.labels, now_ns)

    # --- state -----------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._stale:
            self._load()
        try:
            with self.store.transaction():
                yield
        except BaseException:
            # The in-memory state may be ahead of the database: start again from what it holds,
            # now if it can be read, else before the next call touches anything.
            self._stale = True
            try:
                self._load()
            except Exception as exc:  # the original error is the one to raise
                log.warning("alert_state_reload_failed", error=str(exc))
            raise

    def _load(self) -> None:
        self.windows = {sid: StationWindow(sid, self.retention_ns) for sid in self.registry}
        default_zone = ZoneInfo(self.config.scheduler.timezone)
        self.values = {
            sid: StationValues(
                sid,
                ZoneInfo(station.timezone) if station.timezone else default_zone,
                self.config.basis,
                not_raised=self._not_raised,
            )
            for sid, station in self.registry.items()
        }
        for station_id, state in self.store.load_station_values():
            if station_id in self.values:
                self.values[station_id].restore(state)
                newest = self.values[station_id].newest_ns
                window = self.windows[station_id]
                if newest is not None and (window.watermark_ns is None or newest > window.watermark_ns):
                    window.watermark_ns = newest
        for station_id, parameter, sample, normal in self.store.load_latest():
            if station_id in self.windows:
                self.windows[station_id].restore_latest(parameter, sample, normal)
        # Older samples would be pruned from the windows at once; the database keeps them.
        for station_id, parameter, sample in self.store.load_samples(self.retention_ns):
            if station_id in self.windows:
                self.windows[station_id].restore_sample(parameter, sample)
        network = getattr(self.registry, "network", None)
        if network is not None:
            # Reach speeds fall back to the stations' own velocity readings where they report them.
            self.incidents = IncidentFeed(
                network.with_velocity(self._velocity_of), self.registry, self.standard, self.config.incidents
            )
            incident_state = self.store.load_incident_state()
            if incident_state is not None:
                self.incidents.restore(incident_state)
        self.alerts = {}
        self._by_station = {}
        for record in self.store.load_alerts():
            self._remember(record)
        self.silences = self.store.load_silences()
        self._stale = False

    def _remember(self, record: AlertRecord) -> None:
        self.alerts[record.alert_id] = record
        self._by_station.setdefault(record.station_id, set()).add(record.alert_id)

    def _retire_orphans(self, now_ns: int) -> None:
        """Resolve active alerts of rules no longer configured or stations no longer registered."""
        for record in self.alerts.values():
            orphan = record.rule not in self._policies or (
                record.station_id is not None and record.station_id not in self.registry
            )
            if not orphan or not record.active:
                continue
            before = record.state
            notify: Literal["resolved"] | None = (
                "resolved" if before is AlertState.FIRING and record.notified else None
            )
            record.state = AlertState.RESOLVED if before is AlertState.FIRING else AlertState.OK
            record.ended_ns = now_ns
            record.current = {**record.current, "summary": f"rule or station removed: {record.rule}"}
            self._commit(record, [Transition(Step.RETIRED, before, record.state, now_ns, notify)], now_ns)

    def station_status(self, station: Station, at_ns: int, max_age_ns: int = DAY_NS) -> PointStatus | None:
        """The station's class from its period values so far (what the water rules judge): each item
        whose newest reading is at most `max_age_ns` before `at_ns`; None without a class."""
        if "water" not in station.kinds:
            return None
        evidence: dict[str, Evidence] = {}
        for code, item in self.values[station.id].items.items():
            if code not in self.standard.items or not 0 <= at_ns - item.newest_ns <= max_age_ns:
                continue
            value = item.period_value()
            if value is not None:
                evidence[code] = Evidence(code, value, item.newest_ns, DataFlag.NORMAL, max(item.count, 1))
        result = classify(
            self.standard, {c: e.value for c, e in evidence.items()}, station.water_body, station.target_class
        )
        return None if result.water_class is None else PointStatus(result, evidence)

    def latest_of(self, station_id: str) -> dict[str, Sample]:
        """The newest reading of each parameter: the window's, and the period values' instants."""
        latest = {
            code: Sample(item.instant_ns, item.instant, DataFlag(item.instant_flag))
            for code, item in self.values[station_id].items.items()
        }
        for code, sample in self.windows[station_id].latest.items():
            if code not in latest or sample.time_ns > latest[code].time_ns:
                latest[code] = sample
        return latest

    def _velocity_of(self, station_id: str) -> float | None:
        """The station's newest valid flow velocity (m/s) within a day of its newest reading, or None."""
        values = self.values.get(station_id)
        item = None if values is None else values.items.get("velocity")
        if item is None or values is None or values.newest_ns is None or item.instant_flag != DataFlag.NORMAL:
            return None
        return item.instant if values.newest_ns - item.instant_ns <= DAY_NS else None

    def station_alerts(self, station_id: str | None) -> list[AlertRecord]:
        return [self.alerts[a] for a in sorted(self._by_station.get(station_id, ()))]

    def state_json(self) -> dict[str, Any]:
        """Counts for /api/v1/stats and logs."""
        states = Counter(r.state.value for r in self.alerts.values())
        return {"alerts": dict(states), "readings": dict(self.counts), "silences": len(self.silences)}


def _ignore(station_id: str, item: str, time_ns: int, value: float, flag: str) -> None:
    """`IncidentFeed.offer` when there is no river network to follow incidents along."""


def _identity(rule: Rule, finding: Finding) -> dict[str, str]:
    """The labels that name an alert: the rule, and the finding's station, parameter and group."""
    identity = {"rule": rule.config.name}
    if finding.station_id is not None:
        identity["station_id"] = finding.station_id
    if finding.parameter is not None:
        identity["parameter"] = finding.parameter
    if finding.group is not None:
        identity[finding.group[0]] = finding.group[1]
    return identity


def _time_of(reading: Reading) -> int:
    return reading.time_ns


# The station kind a rule kind judges: water level only at hydrology stations, water at water ones.
_RULE_STATION_KIND: Final[Mapping[str, str]] = {
    "water_level": "hydro",
    "water_quality": "water",
    "compliance_drop": "water",
    "exceedance": "water",
}
# The parameters a window rule reads, by kind (silence needs only the watermark); None: all of them.
_WINDOWED_BY_KIND: Final[Mapping[str, frozenset[str]]] = {
    "water_level": frozenset({"level"}),
    "silent_station": frozenset(),
}


def _windowed_parameters(rules: Sequence[Rule]) -> frozenset[str] | None:
    """The parameters the window rules need; None when one of them reads every parameter."""
    out: set[str] = set()
    for rule in rules:
        needed = _WINDOWED_BY_KIND.get(rule.kind)
        if needed is None:
            return None
        out |= needed
    return frozenset(out)


def _window_ns(config: RuleConfigBase) -> int:
    longest = 0
    for name in ("window", "rate_window"):
        value = getattr(config, name, None)
        if value is not None:
            longest = max(longest, ns(value))
    return longest


def _snapshot(finding: Finding) -> dict[str, Any]:
    return {
        "condition": finding.condition.value,
        "summary": finding.summary,
        "description": finding.description,
        "values": dict(finding.values),
        "evidence": [e.to_json() for e in finding.evidence],
        "water_class": finding.water_class,
        "primary_pollutants": list(finding.primary_pollutants),
        "context": dict(finding.context),
        "observed_ns": finding.observed_ns,
    }
