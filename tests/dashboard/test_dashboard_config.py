"""The dashboard's configuration: the documented examples validate, bad values are refused."""

from __future__ import annotations

import inspect
import textwrap
from types import ModuleType

import pytest
import yaml
from pydantic import ValidationError

import ingest.app.dashboard
import ingest.app.dashboard.config
from ingest.app.dashboard import DashboardConfig


def _example(module: ModuleType) -> DashboardConfig:
    doc = inspect.getdoc(module) or ""
    block = textwrap.dedent(doc.split("Example:\n", 1)[1])
    return DashboardConfig.model_validate(yaml.safe_load(block)["dashboard"])


@pytest.mark.parametrize("module", [ingest.app.dashboard, ingest.app.dashboard.config])
def test_the_docstring_examples_validate(module: ModuleType) -> None:
    """Each module's `Example:` block is a valid `dashboard` section."""
    config = _example(module)
    assert config.enabled is True
    assert config.stream_interval.total_seconds() == 2


@pytest.mark.parametrize(
    "section",
    [
        {"stream_interval": "PT0.01S"},
        {"max_streams": 0},
        {"max_points": 5},
        {"colour": "blue"},
    ],
)
def test_bad_values_are_refused(section: dict[str, object]) -> None:
    """Intervals below 100 ms, no streams, tiny charts and unknown keys fail at start-up."""
    with pytest.raises(ValidationError):
        DashboardConfig.model_validate(section)
