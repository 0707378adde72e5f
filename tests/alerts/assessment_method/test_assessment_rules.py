"""The assessment rules file: the shipped defaults, the documented example, and what is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.assessment_method import rules as rules_module
from alerts.assessment_method.rules import (
    DEFAULT_RULES_FILE,
    AssessmentRules,
    RulesError,
    check_rules,
    default_rules,
    load_rules,
)
from config.registry import WaterClass
from config.standards import default_standard

STANDARD = default_standard()


def _shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_shipped_rules_load_and_fit_the_standard() -> None:
    """The shipped file validates, and every code and precision fits GB 3838-2002."""
    rules = default_rules()
    assert check_rules(rules, STANDARD) == []
    assert rules.validity.per_day("nh3n") == 4
    assert rules.validity.per_day("hg") == 1
    assert rules.validity.per_month("codmn") == 20
    assert rules.validity.per_month("cd") == 1
    assert rules.required_items.for_body("river") == ("ph", "do", "codmn", "nh3n", "tp")
    assert rules.required_items.for_body("reservoir")[-1] == "tn"
    assert rules.section_grades[WaterClass.WORSE_THAN_V] == "重度污染"


def test_every_unverified_rule_is_a_key_of_the_shipped_file() -> None:
    """Each rule the reference marks UNVERIFIED is set in the file, with an UNVERIFIED comment."""
    text = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    data = _shipped()
    for key in ("validity", "required_items", "below_detection", "ph_statistic", "decimals", "region_grades"):
        assert key in data
    assert text.count("UNVERIFIED") >= 8
    assert data["region_grades"]["min_sections_for_shares"] == 5


def test_documented_example_validates() -> None:
    """The `Example:` block of rules.py is a valid (partial) rules file once the rest is defaulted."""
    doc = rules_module.__doc__ or ""
    block = doc.split("Example:\n", 1)[1]
    example = yaml.safe_load("\n".join(line[4:] for line in block.splitlines()))
    merged = {**_shipped(), **example}
    rules = AssessmentRules.model_validate(merged)
    assert rules.validity.min_days_per_month == 20


def test_precision_too_coarse_for_a_limit_is_refused(tmp_path: Path) -> None:
    """Two places for lake TP (0.025) would let rounding cross a limit: refused, naming the item."""
    data = _shipped()
    data["decimals"]["tp"] = 2
    with pytest.raises(RulesError, match=r"decimals\.tp: 2 places cannot express the limits \[0\.025\]"):
        load_rules(_write(tmp_path, data), STANDARD)


def test_unknown_item_codes_are_refused(tmp_path: Path) -> None:
    """A code that is neither a standard item nor an extra item is named with its key."""
    data = _shipped()
    data["required_items"]["river"] = ["ph", "nh4"]
    with pytest.raises(RulesError, match=r"required_items\.river: unknown items nh4"):
        load_rules(_write(tmp_path, data), STANDARD)


def test_required_item_without_precision_is_refused(tmp_path: Path) -> None:
    """A required item needs a reporting precision, or it could never be assessed."""
    data = _shipped()
    del data["decimals"]["do"]
    with pytest.raises(RulesError, match=r"decimals: no precision for do"):
        load_rules(_write(tmp_path, data), STANDARD)


def test_t_is_never_a_valid_flag(tmp_path: Path) -> None:
    """Listing T among the valid flags would average over-range results: refused."""
    data = _shipped()
    data["valid_flags"] = ["N", "T"]
    with pytest.raises(RulesError, match="T is never a valid value"):
        load_rules(_write(tmp_path, data), STANDARD)


def test_share_rungs_must_end_with_a_catch_all(tmp_path: Path) -> None:
    """A ladder of regional grades that could match nothing is refused."""
    data = _shipped()
    data["region_grades"]["by_shares"] = data["region_grades"]["by_shares"][:-1]
    with pytest.raises(RulesError, match="by_shares must end with a grade without conditions"):
        load_rules(_write(tmp_path, data), STANDARD)


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    """A misspelt key fails with its path instead of being ignored."""
    data = _shipped()
    data["validity"]["min_result_per_day"] = 3
    with pytest.raises(RulesError, match=r"validity\.min_result_per_day"):
        load_rules(_write(tmp_path, data), STANDARD)
