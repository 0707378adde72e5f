"""Every `Example:` block of the notification modules is a valid `notify` section, so docs cannot drift."""

from __future__ import annotations

import importlib
import re
import textwrap
from pathlib import Path

import pytest

from alerts.notify_config import NotifyConfig
from config.loader import read_yaml

MODULES = [
    "alerts.notify_config",
    "alerts.routing",
    "alerts.ratelimit",
    "alerts.templates",
    "alerts.notifiers.webhook",
    "alerts.notifiers.alertmanager",
    "alerts.notifiers.dingtalk",
    "alerts.notifiers.wecom",
    "alerts.notifiers.slack",
]


def _example(module: str) -> str:
    doc = importlib.import_module(module).__doc__ or ""
    _, marker, rest = doc.partition("\nExample:\n")
    assert marker, f"{module} has no Example: block"
    block = []
    for line in rest.splitlines():
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block))


@pytest.mark.parametrize("module", MODULES)
def test_example_validates(module: str, tmp_path: Path) -> None:
    """The docstring's example loads (with its ${VAR} references set) as a NotifyConfig."""
    text = _example(module)
    path = tmp_path / "example.yaml"
    path.write_text(text, encoding="utf-8")
    # URL-shaped values of 16+ bytes fit every kind of reference: tokens, keys, secrets, webhook URLs.
    environ = {name: f"https://hooks.example/{name.lower()}" for name in re.findall(r"\$\{(\w+)\}", text)}

    config = NotifyConfig.model_validate(read_yaml(path, environ)["notify"])

    assert config.receivers
