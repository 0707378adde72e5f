"""The `http` section: documented examples validate, an empty token and bad host names are refused."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import ingest.app.http_config
from config.loader import ConfigError, read_yaml
from ingest.app.http import HTTPService
from ingest.app.http_config import HostAllowList, HostVerdict, HTTPConfig
from ingest.app.settings import load_settings

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "examples" / "ecowatch.yaml"


def test_the_docstring_example_validates() -> None:
    """The module's `Example:` block is a valid `http` section with a token and limits."""
    doc = inspect.getdoc(ingest.app.http_config) or ""
    block = textwrap.dedent(doc.split("Example:\n", 1)[1])
    config = HTTPConfig.model_validate(yaml.safe_load(block)["http"])
    assert config.token is not None
    assert config.max_connections == 64


def test_the_example_configuration_sets_a_token_from_the_environment() -> None:
    """config/examples/ecowatch.yaml's http section validates and takes its token from ${ECOWATCH_HTTP_TOKEN}."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    assert yaml.safe_load(text)["http"]["token"] == "${ECOWATCH_HTTP_TOKEN}"
    environ = {name: f"dummy-{name.lower()}" for name in re.findall(r"\$\{(\w+)", text)}
    config = HTTPConfig.model_validate(read_yaml(EXAMPLE_CONFIG, environ)["http"])
    assert config.token is not None
    assert config.token.get_secret_value() == "dummy-ecowatch_http_token"
    assert config == HTTPConfig(
        host=config.host, port=config.port, token=config.token, allowed_hosts=config.allowed_hosts
    ), "the example shows the defaults of the limits"


@pytest.mark.parametrize("token", ["", " ", "\t\n"])
def test_an_empty_token_is_a_configuration_error(token: str) -> None:
    """An empty or blank http.token fails at load, naming the key, instead of protecting nothing."""
    with pytest.raises(ConfigError, match=r"http\.token: .*must not be empty"):
        load_settings(None, http={"token": token})


def test_an_empty_token_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """ECOWATCH_HTTP__TOKEN set but empty (a missing secret in a manifest) fails the same way."""
    monkeypatch.setenv("ECOWATCH_HTTP__TOKEN", "")
    with pytest.raises(ConfigError, match=r"http\.token"):
        load_settings(None)


def test_the_server_refuses_an_empty_token_too() -> None:
    """HTTPService built in code with a blank token raises rather than serving with it."""
    with pytest.raises(ValueError, match="must not be empty"):
        HTTPService("127.0.0.1", 0, {}, token=" ")


@pytest.mark.parametrize(
    "section",
    [
        {"allowed_hosts": ["http://dash.example.org"]},
        {"allowed_hosts": ["dash.example.org:8080"]},
        {"allowed_hosts": ["dash.example.org/"]},
        {"allowed_hosts": ["*dash.example.org"]},
        {"max_connections": 0},
        {"header_timeout": "PT0S"},
        {"max_body_bytes": 10},
        {"max_query_params": 0},
        {"limits": {}},
    ],
)
def test_bad_values_are_refused(section: dict[str, object]) -> None:
    """Host patterns with a scheme, port or path, zero limits and unknown keys fail at start-up."""
    with pytest.raises(ValidationError):
        HTTPConfig.model_validate(section)


def test_allowed_hosts_are_normalized() -> None:
    """Case and a trailing dot do not matter in the configuration."""
    assert HTTPConfig(allowed_hosts=("Dash.Example.ORG.",)).allowed_hosts == ("dash.example.org",)


@pytest.mark.parametrize(
    ("values", "http_1_1", "verdict"),
    [
        (["localhost"], True, HostVerdict.ALLOWED),
        (["this-machine:8080"], True, HostVerdict.ALLOWED),
        (["192.168.1.20:8080"], True, HostVerdict.ALLOWED),
        (["[2001:db8::1]:8080"], True, HostVerdict.ALLOWED),
        (["x.dash.example.org"], True, HostVerdict.ALLOWED),
        (["dash.example.org"], True, HostVerdict.NOT_ALLOWED),
        (["rebind.attacker.example"], True, HostVerdict.NOT_ALLOWED),
        (["2130706433"], True, HostVerdict.NOT_ALLOWED),
        ([], True, HostVerdict.MALFORMED),
        ([], False, HostVerdict.ALLOWED),
        (["localhost", "localhost"], True, HostVerdict.MALFORMED),
        (["local host"], True, HostVerdict.MALFORMED),
        (["[::g]"], True, HostVerdict.MALFORMED),
    ],
)
def test_host_verdicts(values: list[str], http_1_1: bool, verdict: HostVerdict) -> None:
    """Addresses, localhost and listed names pass; other names are not allowed; bad headers are malformed."""
    allow = HostAllowList(["*.dash.example.org", "this-machine"])
    assert allow.check(values, http_1_1) is verdict
