"""The assessment method's rules as a validated model of `config/standards/assessment.yaml`.

GB 3838-2002 (config/standards/gb3838-2002.yaml) says what a value's class is; this file says how
results become period values and sections and regions are judged: validity thresholds, required
items, the below-detection and over-range rules, reporting precision, grades, the trophic state
index, the district ranking. Every rule the shared reference marks UNVERIFIED is a key here with a
documented default (the comments in the YAML file give the reason for each).

`load_rules(path, standard)` validates the file and checks it against the standard: every code is
an item of the standard or an `extra_items` entry, and each item's reporting precision expresses
every limit of the item exactly (0.025 needs three decimals), so rounding never crosses a limit.

Example:
    method: 地表水环境质量评价办法（试行）
    default_timezone: Asia/Shanghai
    validity: {min_results_per_day: 4, min_days_per_month: 20}
    required_items: {river: [ph, do, codmn, nh3n, tp], lake: [ph, do, codmn, nh3n, tp, tn]}
    decimals: {ph: 2, do: 2, codmn: 2, nh3n: 3, tp: 3, tn: 2, chla: 1, sd: 2}
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Final, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from config import DATA_DIR
from config.registry import WaterClass
from config.standards import LAKE_LIKE, Standard, WaterBody, default_standard
from config.types import StrictModel, TimeZoneName

DEFAULT_RULES_FILE: Final = DATA_DIR / "standards" / "assessment.yaml"
# The over-range flag of HJ 212: never a valid value, handled by `OverRange`.
OVER_RANGE_FLAG: Final = "T"
Figure = Literal["share_i_iii", "share_worse_than_v", "compliance_rate"]


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file and the key."""


class ItemValidity(StrictModel):
    """Validity thresholds of one item that differ from the defaults."""

    min_results_per_day: int | None = Field(None, ge=1, description="Results a valid day needs.")
    min_days_per_month: int | None = Field(None, ge=1, le=31, description="Valid days a valid month needs.")


class Validity(StrictModel):
    """How many results make a valid day, days a valid month, months a valid quarter or year."""

    min_results_per_day: int = Field(4, ge=1, description="Valid (or over-range) results a day needs.")
    min_days_per_month: int = Field(20, ge=1, le=31, description="Valid days a whole month needs.")
    min_months_per_quarter: int = Field(2, ge=1, le=3, description="Valid months a quarter needs.")
    min_months_per_year: int = Field(8, ge=1, le=12, description="Valid months a year needs.")
    overrides: dict[str, ItemValidity] = Field(
        default_factory=dict, description="Per item thresholds (items sampled by hand)."
    )

    def per_day(self, code: str) -> int:
        override = self.overrides.get(code)
        if override is not None and override.min_results_per_day is not None:
            return override.min_results_per_day
        return self.min_results_per_day

    def per_month(self, code: str) -> int:
        override = self.overrides.get(code)
        if override is not None and override.min_days_per_month is not None:
            return override.min_days_per_month
        return self.min_days_per_month


class RequiredItems(StrictModel):
    """Items without which a section is not assessable."""

    river: tuple[str, ...] = Field(description="Required on rivers.")
    lake: tuple[str, ...] = Field(description="Required on lakes and reservoirs.")

    def for_body(self, water_body: WaterBody) -> tuple[str, ...]:
        return self.lake if water_body in LAKE_LIKE else self.river


class BelowDetection(StrictModel):
    """Results below the detection limit (`0.01L`)."""

    mean_factor: float = Field(0.5, ge=0, le=1, description="Fraction of the limit counted in means.")


class OverRange(StrictModel):
    """Results flagged T: at least the value, never cleaner data."""

    bound: Literal["period", "day"] = Field(
        "period", description="Whether every period value, or each daily value, is at least the T results."
    )
    not_raised: tuple[str, ...] = Field(("do", "sd"), description="Items where higher is cleaner.")


class PrimaryPollutants(StrictModel):
    """Main pollutants (主要污染指标) and exceedance multiples (超标倍数)."""

    reference_class: WaterClass = Field(WaterClass.III, description="Class the multiples are against.")
    max_items: int = Field(3, ge=1, description="At most this many main pollutants.")
    order: Literal["class_then_multiple", "multiple"] = Field(
        "class_then_multiple", description="Worst class first then multiple, or multiple alone."
    )
    priority_items: tuple[str, ...] = Field((), description="Items listed first when they exceed.")
    multiple_decimals: int = Field(2, ge=0, le=6, description="Decimal places of multiples.")


class ShareGrade(StrictModel):
    """One rung of the regional grade by shares; both bounds must hold, none means always."""

    grade: str = Field(min_length=1, description="Grade name.")
    min_share_i_iii: float | None = Field(None, ge=0, le=1, description="Share I–III at least this.")
    max_share_worse_than_v: float | None = Field(
        None, ge=0, le=1, description="Share 劣V below this (exclusive)."
    )


class RegionGrades(StrictModel):
    """Grade of a region (river, basin, district)."""

    min_sections_for_shares: int = Field(5, ge=1, description="From this many sections, grade by shares.")
    by_shares: tuple[ShareGrade, ...] = Field(description="Rungs, first match wins; the last matches all.")

    @model_validator(mode="after")
    def _last_catches_all(self) -> RegionGrades:
        last = self.by_shares[-1] if self.by_shares else None
        if last is None or last.min_share_i_iii is not None or last.max_share_worse_than_v is not None:
            raise ValueError("by_shares must end with a grade without conditions")
        return self


class TliItem(StrictModel):
    """TLI(j) = 10 (a + b ln x) and the item's correlation r with chlorophyll a."""

    r: float = Field(description="Correlation with chlorophyll a; the weight is r^2 / sum r^2.")
    a: float = Field(description="Constant term.")
    b: float = Field(description="Coefficient of ln x.")


class TliGrade(StrictModel):
    """A trophic grade: TLI below `below`, or at most `at_most`; neither for the last grade."""

    grade: str = Field(min_length=1, description="Grade name.")
    below: float | None = Field(None, description="Exclusive upper bound.")
    at_most: float | None = Field(None, description="Inclusive upper bound.")


class Trophic(StrictModel):
    """Trophic state index TLI(Σ) of lakes and reservoirs."""

    items: dict[str, TliItem] = Field(description="Items of the index by code.")
    required: tuple[str, ...] = Field(description="Items the index needs; it is computed from those present.")
    decimals: int = Field(1, ge=0, le=6, description="Decimal places of TLI, rounded before grading.")
    grades: tuple[TliGrade, ...] = Field(description="Grades, lowest TLI first; the last catches all.")


class RankingKey(StrictModel):
    """One figure of the district ranking."""

    figure: Figure = Field(description="Which regional figure.")
    order: Literal["asc", "desc"] = Field(description="desc: larger ranks better.")


class ExtraItem(StrictModel):
    """An item the assessment reports that the standard does not list."""

    name_zh: str = Field(min_length=1, description="Chinese name.")
    name_en: str = Field(min_length=1, description="English name.")
    unit: str = Field(min_length=1, description="Unit of values.")


class AssessmentRules(StrictModel):
    """The whole rules file."""

    method: str = Field(min_length=1, description="The method these rules implement.")
    default_timezone: TimeZoneName = Field("Asia/Shanghai", description="Zone of local days.")
    valid_flags: tuple[str, ...] = Field(("N",), description="HJ 212 flags of results that enter means.")
    validity: Validity = Field(default_factory=Validity, description="Validity thresholds.")
    required_items: RequiredItems = Field(description="Items a section needs for a class.")
    below_detection: BelowDetection = Field(default_factory=BelowDetection, description="Below-DL rule.")
    over_range: OverRange = Field(default_factory=OverRange, description="Over-range (T) rule.")
    ph_statistic: Literal["mean", "extreme"] = Field("mean", description="How pH period values are formed.")
    decimals: dict[str, int] = Field(description="Reporting precision (decimal places) per item.")
    extra_items: dict[str, ExtraItem] = Field(default_factory=dict, description="Items beyond the standard.")
    primary_pollutants: PrimaryPollutants = Field(
        default_factory=PrimaryPollutants, description="Main pollutants and multiples."
    )
    section_grades: dict[WaterClass, str] = Field(description="Grade of a section by class.")
    region_grades: RegionGrades = Field(description="Grade of a region.")
    trophic: Trophic = Field(description="Trophic state index of lakes and reservoirs.")
    ranking: tuple[RankingKey, ...] = Field(description="District ranking figures, in order.")
    share_decimals: int = Field(4, ge=0, le=8, description="Decimal places of shares and rates.")

    @model_validator(mode="after")
    def _coherent(self) -> AssessmentRules:
        if OVER_RANGE_FLAG in self.valid_flags:
            raise ValueError("valid_flags: T is never a valid value (see over_range)")
        if set(self.section_grades) != set(WaterClass):
            raise ValueError("section_grades needs a grade for each class I..V and 劣V")
        bad = {code: d for code, d in self.decimals.items() if not 0 <= d <= 8}
        if bad:
            raise ValueError(f"decimals out of 0..8: {bad}")
        return self

    def name_zh(self, standard: Standard, code: str) -> str:
        item = standard.items.get(code)
        if item is not None:
            return item.name_zh
        extra = self.extra_items.get(code)
        return extra.name_zh if extra is not None else code


def load_rules(path: Path, standard: Standard) -> AssessmentRules:
    """Load, validate and check a rules file against `standard`; `RulesError` says what is wrong."""
    try:
        with path.open(encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
        rules = AssessmentRules.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        described = "; ".join(
            ".".join(str(p) for p in e["loc"]) + ": " + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise RulesError(f"{path}: {described}") from exc
    faults = check_rules(rules, standard)
    if faults:
        raise RulesError(f"{path}: " + "; ".join(faults))
    return rules


@cache
def default_rules() -> AssessmentRules:
    """The shipped rules, checked against the shipped GB 3838-2002, loaded once."""
    return load_rules(DEFAULT_RULES_FILE, default_standard())


def check_rules(rules: AssessmentRules, standard: Standard) -> list[str]:
    """What does not fit the standard, one sentence per fault (empty when all is well)."""
    known = set(standard.items) | set(rules.extra_items)
    faults: list[str] = []
    named: Mapping[str, tuple[str, ...]] = {
        "decimals": tuple(rules.decimals),
        "required_items.river": rules.required_items.river,
        "required_items.lake": rules.required_items.lake,
        "validity.overrides": tuple(rules.validity.overrides),
        "over_range.not_raised": rules.over_range.not_raised,
        "primary_pollutants.priority_items": rules.primary_pollutants.priority_items,
        "trophic.items": tuple(rules.trophic.items),
        "trophic.required": rules.trophic.required,
    }
    for key, codes in named.items():
        unknown = [code for code in codes if code not in known]
        if unknown:
            faults.append(f"{key}: unknown items {', '.join(unknown)}")
    needed = {*rules.required_items.river, *rules.required_items.lake, *rules.trophic.items}
    without = sorted(code for code in needed if code not in rules.decimals)
    if without:
        faults.append(f"decimals: no precision for {', '.join(without)}")
    if not set(rules.trophic.required) <= set(rules.trophic.items):
        faults.append("trophic.required: every required item needs coefficients in trophic.items")
    for code, places in rules.decimals.items():
        item = standard.items.get(code)
        if item is None:
            continue
        bounds = [*(item.limits or ()), *(item.limits_lake or ())]
        bounds += [b for b in (item.low, item.high) if b is not None]
        step = Decimal(1).scaleb(-places)
        coarse = [b for b in bounds if Decimal(repr(b)) % step != 0]
        if coarse:
            faults.append(f"decimals.{code}: {places} places cannot express the limits {coarse}")
    return faults
