"""Readers for the deployment files the tests check: YAML, `${VAR}` references, the Dockerfile,
.dockerignore and systemd units, plus ecowatch settings loaded with dummy secrets.

Docker, Compose and Kubernetes do not run here, so their files are parsed and checked statically.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.app.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
ECOWATCH_YAML = DEPLOY / "ecowatch.yaml"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
UNIT = DEPLOY / "systemd" / "ecowatch.service"
DEMO_REGISTRY = ROOT / "config" / "stations" / "chongqing-demo.yaml"
STANDARD = ROOT / "config" / "standards" / "gb3838-2002.yaml"

# `${VAR}`, `${VAR:-default}`, `${VAR:?message}`; `$${...}` is compose's escaped dollar.
_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def env_references(text: str) -> set[str]:
    """Names of the environment variables a text references as `${VAR}`."""
    return set(_REFERENCE.findall(text))


def value_references(value: Any) -> set[str]:
    """Names referenced as `${VAR}` in the string values of a parsed document (not its comments)."""
    if isinstance(value, dict):
        return set().union(*(value_references(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(value_references(v) for v in value))
    return env_references(value) if isinstance(value, str) else set()


def is_reference(value: str) -> bool:
    """The whole value is one `${VAR}` reference (no literal text around it)."""
    return _REFERENCE.fullmatch(value) is not None


@contextmanager
def dummy_environment(monkeypatch: pytest.MonkeyPatch, text: str) -> Iterator[dict[str, str]]:
    """Every variable the text references set to a dummy value; no stray ECOWATCH_* overrides."""
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("ECOWATCH_")]:
            patch.delenv(name)
        values = {name: f"dummy-{name.lower()}" for name in value_references(yaml.safe_load(text))}
        for name, value in values.items():
            patch.setenv(name, value)
        yield values


def settings_of(monkeypatch: pytest.MonkeyPatch, path: Path) -> Settings:
    """ecowatch's settings from a configuration file, secrets set to dummies."""
    with dummy_environment(monkeypatch, path.read_text(encoding="utf-8")):
        return load_settings(path)


# --- Dockerfile -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    flags: dict[str, str]
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


_FLAG = re.compile(r"^--([a-z-]+)(?:=(\S*))?\s+")


def parse_dockerfile(text: str) -> Dockerfile:
    """Instructions per stage, as the Dockerfile frontend reads them (continuations, comments)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        rest = rest.strip() + " "
        while match := _FLAG.match(rest):
            flags[match.group(1)] = match.group(2) or ""
            rest = rest[match.end() :]
        instruction = Instruction(keyword, flags, rest.strip())
        if keyword == "FROM":
            image, _, alias = instruction.args.partition(" AS ")
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], image.strip())
            stages.append(Stage(base=base, name=alias.strip() or None))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede FROM, not {keyword}"
            name, _, default = instruction.args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages)


# --- .dockerignore --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DockerIgnore:
    """Docker's rules: patterns match a path or any of its parents; the last match decides."""

    patterns: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        patterns = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = line.removeprefix("!").strip("/")
            patterns.append((include, re.compile(_translate(pattern))))
        return cls(tuple(patterns))

    def excluded(self, relative: str) -> bool:
        parts = relative.strip("/").split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        verdict = False
        for include, pattern in self.patterns:
            if any(pattern.fullmatch(c) for c in candidates):
                verdict = not include
        return verdict


def _translate(pattern: str) -> str:
    """A .dockerignore pattern as a regex: `*` and `?` stay within a level, `**` spans levels."""
    segments = pattern.split("/")
    regex = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            regex.append(".*" if last else "(?:[^/]+/)*")
            continue
        body = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in segment)
        regex.append(body if last else body + "/")
    return "".join(regex)


# --- systemd units --------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ordered (key, value) lists: keys such as Environment= repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line}"
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for k, value in section if k == key]


def unit_value(section: list[tuple[str, str]], key: str) -> str:
    values = unit_values(section, key)
    assert values, f"{key}= is not set"
    return values[-1]


def kubernetes_objects() -> Mapping[tuple[str, str], dict[str, Any]]:
    """Every object in deploy/k8s by (kind, name)."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_documents(path):
            if doc.get("kind") == "Kustomization":
                continue
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{key} defined twice"
            objects[key] = doc
    return objects
