"""The import boundaries of pyproject.toml's [tool.importlinter] hold, and they catch a breach."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("ingest", "alerts", "config", "simulators")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    """lint-imports passes on the project as it is."""
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_pipeline_importing_alerts_breaks_a_contract(tmp_path: Path) -> None:
    """A sink that imports the alert engine is reported, naming the import."""
    root = _copy(tmp_path)
    sink = root / "ingest" / "sinks" / "sqlite.py"
    sink.write_text(sink.read_text() + "\nimport alerts.engine  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "ingest.sinks.sqlite -> alerts.engine" in result.stdout


def test_alerts_reaching_past_the_published_contract_breaks_a_contract(tmp_path: Path) -> None:
    """The alert engine importing the write-ahead log (not the reading model or routes) is reported."""
    root = _copy(tmp_path)
    engine = root / "alerts" / "engine.py"
    engine.write_text(engine.read_text() + "\nimport ingest.wal  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "alerts.engine -> ingest.wal" in result.stdout
