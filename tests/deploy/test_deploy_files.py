"""deploy/: every YAML parses, the container configuration validates, the README's links resolve."""

from __future__ import annotations

import re

import pytest
import yaml
from pydantic import SecretStr

from config.loader import ConfigError
from ingest.app.cli import main
from ingest.app.settings import load_settings
from ingest.sinks.influxdb import InfluxDBSinkConfig
from tests.deploy.deploy_files import (
    DEMO_REGISTRY,
    DEPLOY,
    ECOWATCH_YAML,
    ROOT,
    dummy_environment,
    is_reference,
    load_documents,
    load_yaml,
    settings_of,
)


def test_every_yaml_file_under_deploy_parses() -> None:
    """Compose, provisioning, Kubernetes (multi-document) and config files are all valid YAML."""
    paths = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(paths) >= 10
    for path in paths:
        try:
            documents = load_documents(path)
        except yaml.YAMLError as exc:
            pytest.fail(f"{path}: {exc}")
        assert documents, path


def test_the_container_configuration_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/ecowatch.yaml loads with ingest.app.settings once its ${VAR} secrets are set."""
    settings = settings_of(monkeypatch, ECOWATCH_YAML)
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "dummy-ecowatch_mqtt_password"
    (sink,) = settings.sinks
    assert isinstance(sink, InfluxDBSinkConfig)
    assert isinstance(sink.token, SecretStr)
    assert settings.log.format == "json"
    assert settings.mqtt.client_id
    assert settings.mqtt.clean_start is False  # the broker keeps our queue while we restart
    assert settings.http.token is not None  # the port is reachable beyond the container
    assert settings.http.token.get_secret_value() == "dummy-ecowatch_http_token"


def test_secrets_are_references_and_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords and tokens are whole ${VAR} references; without the variable loading names the key."""
    raw = load_yaml(ECOWATCH_YAML)
    assert is_reference(raw["mqtt"]["password"])
    assert all(is_reference(sink["token"]) for sink in raw["sinks"])
    assert is_reference(raw["http"]["token"])
    with dummy_environment(monkeypatch, ECOWATCH_YAML.read_text(encoding="utf-8")):
        monkeypatch.delenv("INFLUX_TOKEN")
        with pytest.raises(ConfigError, match=r"sinks\.0\.token: environment variable INFLUX_TOKEN"):
            load_settings(ECOWATCH_YAML)


def test_check_config_accepts_it_with_the_image_registry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ecowatch check-config` passes on the container configuration with the registry the image ships."""
    with dummy_environment(monkeypatch, ECOWATCH_YAML.read_text(encoding="utf-8")):
        # The image copies the demo registry to the configured path; here it stays where it is.
        monkeypatch.setenv("ECOWATCH_REGISTRY", str(DEMO_REGISTRY))
        assert main(["check-config", "--config", str(ECOWATCH_YAML)]) == 0
    out, err = capsys.readouterr()
    assert "dummy-" not in out, "secrets are masked"
    assert "32 stations" in err


def test_the_readme_links_resolve() -> None:
    """Every relative link in deploy/README.md names a file or directory that exists."""
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    relative = [link for link in links if "://" not in link]
    assert len(relative) >= 10
    for link in relative:
        assert (DEPLOY / link).resolve().exists(), link
    assert (ROOT / "Dockerfile").is_file()
