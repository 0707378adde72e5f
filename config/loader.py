"""Reading a YAML configuration file: `${VAR}` references and readable errors.

Secrets stay out of files by reference: a string `"${ECOWATCH_MQTT_PASSWORD}"` takes the value of
that environment variable (`${VAR:-default}` gives a default). A missing variable is an error that
names the key. Validation errors are turned into one line per problem: `key.path: reason`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The configuration cannot be used; the message names every bad key and why."""


def read_yaml(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    try:
        with path.open(encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    expanded = _expand(raw, env, ())
    assert isinstance(expanded, dict)
    return expanded


def _expand(value: Any, env: Mapping[str, str], where: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, env, (*where, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, (*where, str(i))) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{'.'.join(where)}: environment variable {name} is not set")

        return _REFERENCE.sub(substitute, value)
    return value


def describe(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{prefix}{location}: {error['msg']}")
    return "\n".join(lines)
