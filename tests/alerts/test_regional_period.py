"""Regional alerts on period figures: `alerts.region_figures` and the `regional_period` rule.

The figures come from daily values stored in a real alert database the way the daily assessment
stores them (`daily_values` -> `day_rows` -> `AlertStore.save_daily_values`); the rule is judged
on figures made by hand and on those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

import alerts.rules.regional_period as regional_period
from alerts.assessment_method.daily import daily_values
from alerts.assessment_method.report import station_zones
from alerts.assessment_method.rules import AssessmentRules, default_rules
from alerts.assessment_method.source import ResultRow
from alerts.assessment_method.stored import day_rows
from alerts.region_figures import NOT_ASSESSABLE, FigurePeriod, RegionFigure, region_figures
from alerts.rules.base import Condition, Scope, View
from alerts.rules.regional_period import RegionalPeriodConfig, RegionalPeriodRule
from alerts.store import AlertStore
from config.registry import Station
from config.standards import Standard, default_standard
from config.times import to_ns
from tests.helpers import docstring_examples, station

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
# Class II on a river (NH3-N 0.3, TP 0.08, CODMn 3, DO 8); NH3-N 1.2 makes it class IV.
CLEAN: Final = {"ph": 7.5, "do": 8.0, "codmn": 3.0, "nh3n": 0.3, "tp": 0.08}
BAD_NH3N: Final = 1.2


def _figure(**overrides: Any) -> RegionFigure:
    """A district's month to date: 2 of 3 assessable sections meet their target (66.7 %)."""
    fields: dict[str, Any] = {
        "group_by": "district",
        "region": "渝中区",
        "period": "2026-07",
        "period_kind": "month",
        "last_day": date(2026, 7, 16),
        "period_end_ns": to_ns(datetime(2026, 7, 17, tzinfo=SHANGHAI)),
        "days_stored": 16,
        "sections": 3,
        "assessable": 3,
        "meeting_target": 2,
        "class_i_iii": 2,
        "compliance_rate": 2 / 3,
        "good_share": 2 / 3,
        "stations": {"yz-1": "II (目标 III)", "yz-2": "II (目标 III)", "yz-3": "IV (目标 III)"},
        "below_target": ("yz-3",),
        "worse_than_iii": ("yz-3",),
    }
    return RegionFigure(**{**fields, **overrides})


def _rule(**settings: Any) -> RegionalPeriodRule:
    return RegionalPeriodRule(
        RegionalPeriodConfig.model_validate(
            {"name": "district_compliance_month", "threshold": 0.8, **settings}
        )
    )


def test_a_figure_below_the_threshold_fires_with_the_region_s_facts() -> None:
    """66.7 % against 80 %: FIRING, at the period's end, with the stations' classes as context."""
    [finding] = _rule().judge([_figure()])
    assert finding.condition is Condition.FIRING
    assert (
        finding.summary == "渝中区 2026-07 断面达标率 66.7 %，低于 80 % / compliance rate 66.7 % below 80 %"
    )
    assert finding.description.startswith(
        "区县 渝中区 2026-07（7月1日至16日，16 天有日均值）：3 个断面中 3 个可评价"
    )
    assert "未达标：yz-3 IV (目标 III)" in finding.description
    assert "missing their target: yz-3 IV (目标 III)" in finding.description
    assert finding.group == ("district", "渝中区")
    assert finding.observed_ns == _figure().period_end_ns
    assert finding.values["compliance_rate"] == pytest.approx(2 / 3)
    assert finding.values["threshold"] == 0.8
    assert finding.values["assessable"] == 3.0
    assert finding.context == _figure().stations
    assert finding.station_id is None
    assert finding.parameter is None


def test_a_figure_at_the_threshold_clears() -> None:
    """4 of 5 sections is exactly 80 %: not below the threshold, so CLEAR."""
    fig = _figure(sections=5, assessable=5, meeting_target=4, compliance_rate=4 / 5)
    [finding] = _rule().judge([fig])
    assert finding.condition is Condition.CLEAR
    assert "80.0 %，不低于 80 %" in finding.summary


def test_the_recovery_margin_holds_between_threshold_and_recovery() -> None:
    """With a margin of 0.1, 80 % is HOLD (neither firing nor recovered) and 90 % clears."""
    rule = _rule(recovery_margin=0.1)
    [at_80] = rule.judge([_figure(sections=5, assessable=5, meeting_target=4, compliance_rate=0.8)])
    [at_90] = rule.judge([_figure(sections=10, assessable=10, meeting_target=9, compliance_rate=0.9)])
    assert (at_80.condition, at_90.condition) == (Condition.HOLD, Condition.CLEAR)
    assert "尚未回到 90 %" in at_80.summary


def test_a_region_with_fewer_assessable_sections_than_min_sections_is_not_judged() -> None:
    """Two assessable sections of five (three not assessable): no finding, whatever the rate."""
    fig = _figure(sections=5, assessable=2, meeting_target=0, compliance_rate=0.0)
    assert _rule().judge([fig]) == []
    assert _rule(min_sections=2).judge([fig])[0].condition is Condition.FIRING


def test_figures_of_another_grouping_or_period_are_ignored() -> None:
    """A district month rule judges neither basins, nor rivers, nor days."""
    rule = _rule()
    others = [
        _figure(group_by="basin", region="长江"),
        _figure(group_by="river", region="嘉陵江"),
        _figure(period_kind="day", period="2026-07-16", days_stored=1),
    ]
    assert rule.judge(others) == []
    day_rule = _rule(period="day")
    [finding] = day_rule.judge(others)
    assert finding.summary.startswith("渝中区 2026-07-16 ")


def test_a_month_with_too_few_days_stored_is_not_judged() -> None:
    """Three days into the month the figure is a three-day one: not judged before `min_days`."""
    assert _rule().judge([_figure(days_stored=3)]) == []
    assert len(_rule(min_days=3).judge([_figure(days_stored=3)])) == 1


def test_the_good_share_figure_fires_below_its_threshold() -> None:
    """figure: good_share reads the class I–III share and lists the sections of class IV or worse."""
    rule = _rule(group_by="basin", figure="good_share", threshold=0.75)
    fig = _figure(group_by="basin", region="长江", compliance_rate=1.0)
    [finding] = rule.judge([fig])
    assert finding.condition is Condition.FIRING
    assert finding.summary.startswith("长江 2026-07 水质优良(I–III类)断面比例 66.7 %，低于 75 %")
    assert "IV 类及以下：yz-3 IV (目标 III)" in finding.description
    assert finding.values["good_share"] == pytest.approx(2 / 3)
    assert finding.values["compliance_rate"] == 1.0


def test_match_selects_regions_and_names_only_the_grouping_s_own_label() -> None:
    """match: {district: X} judges X alone; a match on another label is refused at load."""
    rule = _rule(match={"district": "江北区"})
    assert rule.judge([_figure(), _figure(region="江北区")])[0].group == ("district", "江北区")
    assert len(rule.judge([_figure(), _figure(region="江北区")])) == 1
    with pytest.raises(ValidationError, match="can only match its district"):
        _rule(match={"basin": "长江"})


def test_the_threshold_is_a_share_and_required() -> None:
    """A threshold outside (0, 1] or none at all does not load."""
    for bad in (0.0, 1.5, 80):
        with pytest.raises(ValidationError):
            _rule(threshold=bad)
    with pytest.raises(ValidationError, match="threshold"):
        RegionalPeriodConfig.model_validate({"name": "x"})


def test_a_period_rule_finds_nothing_on_views() -> None:
    """Scope PERIOD: the engine calls `judge`; `evaluate` on a view returns no finding."""
    rule = _rule()
    assert (rule.kind, rule.scope) == ("regional_period", Scope.PERIOD)
    view = View(at_ns=0, standard=default_standard(), registry={}, windows={}, started_ns=0)
    assert rule.evaluate(view) == []


def test_the_docstring_example_loads() -> None:
    """Each rule of the module's `Example:` block is a valid RegionalPeriodConfig."""
    [(_, text)] = docstring_examples(regional_period.__doc__ or "")
    rules = yaml.safe_load(text)["rules"]
    configs = [RegionalPeriodConfig.model_validate(r) for r in rules]
    assert [(c.group_by, c.figure, c.threshold) for c in configs] == [
        ("district", "compliance_rate", 0.8),
        ("basin", "good_share", 0.75),
    ]


# --- figures from a real alert database -------------------------------------------------------


def _stations() -> dict[str, Station]:
    """渝中区: three sections; 江北区: five; all target III, all on the 长江 basin."""
    out = [
        station(f"yz-{i}", district="渝中区", basin="长江", river="长江干流", target_class="III")
        for i in (1, 2, 3)
    ]
    out += [
        station(f"jb-{i}", district="江北区", basin="长江", river="嘉陵江", target_class="III")
        for i in (1, 2, 3, 4, 5)
    ]
    return {s.id: s for s in out}


def _results(day: date, values: Mapping[str, Mapping[str, float]]) -> list[ResultRow]:
    """Six 4-hourly results a day of each station's items (values: station -> item -> value)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=SHANGHAI)
    return [
        (station_id, to_ns(start + timedelta(hours=h)), code, value, "N", False)
        for station_id, items in values.items()
        for h in (0, 4, 8, 12, 16, 20)
        for code, value in items.items()
    ]


def _store_days(
    path: Path,
    stations: Mapping[str, Station],
    days: Iterable[date],
    values: Callable[[date], Mapping[str, Mapping[str, float]]],
    standard: Standard,
    rules: AssessmentRules,
) -> None:
    """Store each day's daily values as `DailyAssessment.run` does."""
    zones = station_zones(list(stations.values()), rules)
    store = AlertStore(path)
    try:
        for day in days:
            daily = daily_values(
                _results(day, values(day)), zones, standard, rules, [(day, day + timedelta(1))]
            )
            with store.transaction():
                store.save_daily_values(day.isoformat(), day_rows(daily).get(day, []))
    finally:
        store.close()


def _july(first: int, last: int) -> list[date]:
    return [date(2026, 7, d) for d in range(first, last + 1)]


def _by_region(figures: Sequence[RegionFigure]) -> dict[str, RegionFigure]:
    return {f.region: f for f in figures}


@pytest.fixture
def july(tmp_path: Path) -> tuple[Path, dict[str, Station]]:
    """Ten stored days of July 2026: yz-3 and jb-5 at class IV every day, the others class II."""
    stations = _stations()

    def values(day: date) -> dict[str, dict[str, float]]:
        bad = {"yz-3", "jb-5"}
        return {sid: {**CLEAN, "nh3n": BAD_NH3N} if sid in bad else dict(CLEAN) for sid in stations}

    path = tmp_path / "alerts.db"
    _store_days(path, stations, _july(1, 10), values, default_standard(), default_rules())
    return path, stations


def test_a_month_in_which_one_district_falls_below_its_threshold_fires_for_it_alone(
    july: tuple[Path, dict[str, Station]],
) -> None:
    """渝中区 2 of 3 (66.7 %) fires; 江北区 4 of 5 (80 %) does not: one regional alert."""
    path, stations = july
    figures = region_figures(
        path,
        stations,
        default_standard(),
        default_rules(),
        group_by="district",
        period="month",
        day=date(2026, 7, 10),
    )
    by = _by_region(figures)
    assert sorted(by) == ["江北区", "渝中区"]
    yz = by["渝中区"]
    assert (yz.period, yz.period_kind, yz.days_stored, yz.last_day) == (
        "2026-07",
        "month",
        10,
        date(2026, 7, 10),
    )
    assert (yz.sections, yz.assessable, yz.meeting_target, yz.class_i_iii) == (3, 3, 2, 2)
    assert yz.compliance_rate == pytest.approx(2 / 3)
    assert yz.stations == {"yz-1": "II (目标 III)", "yz-2": "II (目标 III)", "yz-3": "IV (目标 III)"}
    assert (yz.below_target, yz.worse_than_iii) == (("yz-3",), ("yz-3",))
    assert yz.period_end_ns == to_ns(datetime(2026, 7, 11, tzinfo=SHANGHAI))
    assert by["江北区"].compliance_rate == 0.8
    findings = _rule().judge(figures)
    assert [(f.group, f.condition) for f in findings] == [
        (("district", "江北区"), Condition.CLEAR),
        (("district", "渝中区"), Condition.FIRING),
    ]


def test_the_month_to_date_uses_the_days_up_to_its_day_only(july: tuple[Path, dict[str, Station]]) -> None:
    """Judged on 5 July with 10 days stored: five days count; a basin groups all eight sections."""
    path, stations = july
    [basin] = region_figures(
        path,
        stations,
        default_standard(),
        default_rules(),
        group_by="basin",
        period="month",
        day=date(2026, 7, 5),
    )
    assert (basin.region, basin.days_stored, basin.sections, basin.meeting_target) == ("长江", 5, 8, 6)
    assert basin.good_share == pytest.approx(6 / 8)
    assert basin.period_end_ns == to_ns(datetime(2026, 7, 6, tzinfo=SHANGHAI))


def test_days_not_stored_leave_sections_not_assessable(july: tuple[Path, dict[str, Station]]) -> None:
    """A day after the stored ones, or a new month: every section 不可评价, no share, not judged."""
    path, stations = july
    cases: list[tuple[date, FigurePeriod]] = [(date(2026, 7, 11), "day"), (date(2026, 8, 3), "month")]
    for day, kind in cases:
        figures = region_figures(
            path, stations, default_standard(), default_rules(), group_by="district", period=kind, day=day
        )
        for fig in figures:
            assert (fig.assessable, fig.compliance_rate, fig.days_stored) == (0, None, 0)
            assert set(fig.stations.values()) == {f"{NOT_ASSESSABLE} (目标 III)"}
        assert _rule(period=kind).judge(figures) == []


def test_one_bad_day_in_a_month_is_not_a_regional_event(tmp_path: Path) -> None:
    """yz-3 at class IV on one day of ten: that day's figure fires, the month's mean stays class II."""
    stations = _stations()

    def values(day: date) -> dict[str, dict[str, float]]:
        spike = day == date(2026, 7, 4)
        return {
            sid: {**CLEAN, "nh3n": BAD_NH3N} if spike and sid == "yz-3" else dict(CLEAN) for sid in stations
        }

    path = tmp_path / "alerts.db"
    standard, rules = default_standard(), default_rules()
    _store_days(path, stations, _july(1, 10), values, standard, rules)
    month = region_figures(
        path, stations, standard, rules, group_by="district", period="month", day=date(2026, 7, 10)
    )
    assert _by_region(month)["渝中区"].stations["yz-3"] == "II (目标 III)"
    assert {f.condition for f in _rule().judge(month)} == {Condition.CLEAR}
    day = region_figures(
        path, stations, standard, rules, group_by="district", period="day", day=date(2026, 7, 4)
    )
    [fired] = [f for f in _rule(period="day").judge(day) if f.condition is Condition.FIRING]
    assert fired.summary.startswith("渝中区 2026-07-04 断面达标率 66.7 %")


def test_a_section_without_data_counts_in_sections_but_not_in_the_shares(tmp_path: Path) -> None:
    """jb-4 and jb-5 report nothing: 江北区 has five sections, three assessable, all meeting target."""
    stations = _stations()

    def values(day: date) -> dict[str, dict[str, float]]:
        return {sid: dict(CLEAN) for sid in stations if sid not in ("jb-4", "jb-5")}

    path = tmp_path / "alerts.db"
    standard, rules = default_standard(), default_rules()
    _store_days(path, stations, _july(1, 8), values, standard, rules)
    figures = region_figures(
        path, stations, standard, rules, group_by="district", period="month", day=date(2026, 7, 8)
    )
    jb = _by_region(figures)["江北区"]
    assert (jb.sections, jb.assessable, jb.compliance_rate) == (5, 3, 1.0)
    assert jb.stations["jb-4"] == f"{NOT_ASSESSABLE} (目标 III)"
    [finding] = [f for f in _rule().judge(figures) if f.group == ("district", "江北区")]
    assert finding.condition is Condition.CLEAR
    assert "不可评价 2 个" in finding.description
