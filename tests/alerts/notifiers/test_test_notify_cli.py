"""`ecowatch alerts test-notify`: one sample to one receiver, the outcome and the exit status."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from alerts.notify_cli import add_parser, run
from tests.alerts.notifiers.fake_receiver import Answer, FakeReceiver

TOKEN = "wecom-key-never-printed-0123"


def _config(tmp_path: Path, receiver: FakeReceiver) -> Path:
    path = tmp_path / "ecowatch.yaml"
    notify = {
        "receivers": [
            {"type": "webhook", "name": "city", "url": f"{receiver.url}/hook", "secret": "s" * 32},
            {"type": "wecom", "name": "duty", "webhook_key": TOKEN, "base_url": receiver.url},
        ]
    }
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "notify": notify}))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="ecowatch")
    alerts = parser.add_subparsers(dest="command").add_parser("alerts").add_subparsers(dest="alerts_command")
    add_parser(alerts)
    args = parser.parse_args(["alerts", "test-notify", *argv])
    code = args.func(args)
    assert args.func is run
    out, err = capsys.readouterr()
    return code, out, err


def test_accepted_sample_exits_0(
    tmp_path: Path, receiver: FakeReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """The receiver gets one sample firing event; the command says it was accepted and exits 0."""
    code, out, err = _run(capsys, "city", "--config", str(_config(tmp_path, receiver)))

    assert (code, err) == (0, "")
    assert out.startswith("test-notify: city (webhook) accepted test-notify-")
    (request,) = receiver.requests
    body = request.json()
    assert (body["rule"], body["status"], body["severity"]) == ("test_notify", "firing", "info")
    assert request.header("webhook-id") == body["key"]


def test_each_run_has_a_new_key(
    tmp_path: Path, receiver: FakeReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs send two different idempotency keys, so a deduplicating receiver shows both."""
    config = str(_config(tmp_path, receiver))
    _run(capsys, "city", "-c", config)
    _run(capsys, "city", "-c", config)

    first, second = receiver.requests
    assert first.header("webhook-id") != second.header("webhook-id")


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (Answer.json(200, {"errcode": 93000, "errmsg": "invalid webhook url"}), "final"),
        (Answer.json(200, {"errcode": 45009, "errmsg": "api freq out of limit"}), "would retry"),
        (Answer(503, b"down"), "would retry"),
    ],
)
def test_refusal_exits_1_with_reason_and_verdict(
    tmp_path: Path, receiver: FakeReceiver, capsys: pytest.CaptureFixture[str], answer: Answer, verdict: str
) -> None:
    """A refused sample exits 1 and says why and whether the outbox would retry, never quoting the key."""
    receiver.script(answer)
    code, out, err = _run(capsys, "duty", "--config", str(_config(tmp_path, receiver)))

    assert (code, out) == (1, "")
    assert err.startswith("test-notify: duty (wecom) did not accept it: ")
    assert verdict in err
    assert TOKEN not in err


def test_unreachable_receiver_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    """A receiver that refuses connections is reported as such."""
    receiver = FakeReceiver(port=closed_port)  # never started
    code, _out, err = _run(capsys, "city", "--config", str(_config(tmp_path, receiver)))

    assert code == 1
    assert "connection_failed" in err


def test_unknown_receiver_lists_the_known_ones(
    tmp_path: Path, receiver: FakeReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name that is not configured exits 1 naming the receivers there are."""
    code, _out, err = _run(capsys, "nobody", "--config", str(_config(tmp_path, receiver)))

    assert code == 1
    assert "no receiver named 'nobody' (receivers: city, duty)" in err
    assert receiver.requests == []


def test_invalid_section_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad notify section exits 1 naming the key at fault, without echoing secrets."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "notify": {
                    "receivers": [{"type": "webhook", "name": "x", "url": "http://h/", "secret": "tiny"}]
                }
            }
        )
    )
    code, _out, err = _run(capsys, "x", "--config", str(path))

    assert code == 1
    assert "notify.receivers.0.webhook" in err
    assert "tiny" not in err


def test_no_configuration_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --config or ECOWATCH_CONFIG there is nothing to test."""
    monkeypatch.delenv("ECOWATCH_CONFIG", raising=False)
    code, _out, err = _run(capsys, "city")

    assert code == 1
    assert "no configuration" in err
