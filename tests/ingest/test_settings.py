"""Configuration: YAML plus ECOWATCH_* overrides, errors that name the key, masked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError, read_yaml
from ingest.app.cli import main
from ingest.app.settings import load_settings
from ingest.sinks.sqlite import SQLiteSinkConfig


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ecowatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_use_the_embedded_sqlite_store(tmp_path: Path) -> None:
    """With no sinks configured the SQLite store under data_dir is used."""
    settings = load_settings(write(tmp_path, f"data_dir: {tmp_path}\n"))
    (sink,) = settings.effective_sinks()
    assert isinstance(sink, SQLiteSinkConfig)
    assert sink.path == tmp_path / "readings.db"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ECOWATCH_MQTT__PORT wins over mqtt.port in the file."""
    monkeypatch.setenv("ECOWATCH_MQTT__PORT", "2883")
    settings = load_settings(write(tmp_path, "mqtt:\n  port: 1884\n  host: broker\n"))
    assert settings.mqtt.port == 2883
    assert settings.mqtt.host == "broker"


def test_errors_name_the_key_and_the_reason(tmp_path: Path) -> None:
    """A bad value and an unknown key are both reported with their paths."""
    path = write(tmp_path, "mqtt:\n  port: 70000\n  hots: x\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "mqtt.port" in message
    assert "less than 65536" in message
    assert "mqtt.hots" in message


def test_variable_references_expand_and_missing_ones_fail(tmp_path: Path) -> None:
    """`${VAR}` takes the environment's value; a missing one names the key."""
    path = write(
        tmp_path, "mqtt:\n  username: u\n  password: ${PW_FOR_TEST}\n  client_id: ${CID:-fallback}\n"
    )
    assert read_yaml(path, {"PW_FOR_TEST": "s3cret"})["mqtt"] == {
        "username": "u",
        "password": "s3cret",
        "client_id": "fallback",
    }
    with pytest.raises(ConfigError, match=r"mqtt\.password: environment variable PW_FOR_TEST is not set"):
        read_yaml(path, {})


def test_check_config_prints_the_effective_config_with_secrets_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config shows every section but never a password."""
    monkeypatch.setenv("PW_FOR_TEST", "hunter2-secret")
    nats = "nats://ecowatch:${PW_FOR_TEST}@nats-0:4222"
    path = write(
        tmp_path,
        "mqtt:\n  username: u\n  password: ${PW_FOR_TEST}\n"
        f"cluster:\n  servers: ['{nats}']\n"
        f"wal:\n  backend: jetstream\n  jetstream:\n    stream: s1\n    servers: ['{nats}']\n",
    )
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hunter2-secret" not in out
    assert "password: '**********'" in out
    assert out.count("nats://***@nats-0:4222") == 2  # NATS credentials sit in the server URLs
    assert "sinks:" in out
    assert "type: sqlite" in out


def test_check_config_fails_with_the_key_on_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid file exits 1 with the key on stderr."""
    path = write(tmp_path, "wal:\n  quota_bytes: 10\n")
    assert main(["check-config", "--config", str(path)]) == 1
    assert "wal.quota_bytes" in capsys.readouterr().err


def test_duplicate_sink_names_are_refused(tmp_path: Path) -> None:
    """Two sinks with one name would share a log offset: refused at load."""
    path = write(tmp_path, "sinks:\n  - {type: sqlite, name: a}\n  - {type: sqlite, name: a}\n")
    with pytest.raises(ConfigError, match="unique"):
        load_settings(path)


def test_a_placeholder_that_becomes_a_tag_needs_its_allowed_values() -> None:
    """`{kind}` without `tags` is a start-up error naming the fix; with a list or a pattern it loads."""
    topic = "ecowatch/v1/{district}/{station_id}/{kind}"
    with pytest.raises(ConfigError, match=r"placeholders \['kind'\] become tags"):
        load_settings(None, mqtt={"subscriptions": [{"topic": topic}]})
    with pytest.raises(ConfigError, match="exactly one of"):
        load_settings(None, mqtt={"subscriptions": [{"topic": topic, "tags": {"kind": {}}}]})
    with pytest.raises(ConfigError, match="not placeholders"):
        load_settings(
            None,
            mqtt={
                "subscriptions": [
                    {"topic": topic, "tags": {"kind": {"values": ["water"]}, "x": {"values": ["y"]}}}
                ]
            },
        )
    settings = load_settings(
        None, mqtt={"subscriptions": [{"topic": topic, "tags": {"kind": {"pattern": "water|hydro"}}}]}
    )
    template = settings.mqtt.subscriptions[0].template()
    assert template.disallowed({"kind": "hydro"}) is None
    assert template.disallowed({"kind": "hydro2"}) is not None


def test_the_logs_are_local_write_ahead_logs_by_default() -> None:
    """With no `wal.backend` the daemon keeps its logs under data_dir, as before cluster mode."""
    settings = load_settings(None)
    assert settings.wal.backend == "wal"
    assert settings.wal.jetstream is None


def test_jetstream_backend_reads_servers_from_references_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`${VAR}` works in the jetstream section, ECOWATCH_WAL__BACKEND switches it on, defaults fill the rest."""
    monkeypatch.setenv("NATS_SEED_FOR_TEST", "nats://n1.example:4222")
    monkeypatch.setenv("ECOWATCH_WAL__BACKEND", "jetstream")
    path = write(
        tmp_path,
        "wal:\n  jetstream:\n    servers: ['${NATS_SEED_FOR_TEST}', 'nats://n2.example:4222']\n"
        "    stream: ecowatch-1\n",
    )
    settings = load_settings(path)
    assert settings.wal.backend == "jetstream"
    jetstream = settings.wal.jetstream
    assert jetstream is not None
    assert jetstream.servers == ["nats://n1.example:4222", "nats://n2.example:4222"]
    assert (jetstream.stream, jetstream.replicas, jetstream.subject) == ("ecowatch-1", 3, None)


@pytest.mark.parametrize(
    ("wal", "message"),
    [
        ({"backend": "jetstream"}, "backend jetstream needs wal.jetstream"),
        ({"backend": "jetstream", "jetstream": {"stream": "eco"}}, "wal.jetstream.servers"),
        ({"backend": "jetstream", "jetstream": {"servers": []}}, "wal.jetstream.servers"),
        ({"backend": "jetstream", "jetstream": {"servers": ["nats://a:4222"]}}, "wal.jetstream.stream"),
        ({"backend": "jetstream", "jetstream": {"servers": ["nats://a:4222"], "stream": "a.b"}}, "pattern"),
        (
            {"jetstream": {"servers": ["nats://a:4222"], "stream": "x" * 40}},
            "at most 39 characters",
        ),
        (
            {"jetstream": {"servers": ["nats://a:4222"], "stream": "eco", "subject": "eco.raw"}},
            "subject cannot be set",
        ),
        ({"backend": "kafka"}, "wal.backend"),
    ],
)
def test_an_incomplete_jetstream_backend_is_refused_naming_the_key(
    wal: dict[str, object], message: str
) -> None:
    """Cluster mode needs servers and a stream name that fits both stream names; each gap is named."""
    with pytest.raises(ConfigError, match=message):
        load_settings(None, wal=wal)
