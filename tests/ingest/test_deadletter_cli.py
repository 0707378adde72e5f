"""`ecowatch deadletter list|stats|prune` show the omitted rejections, the store's fill, and free room."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ingest.app.cli import main
from ingest.deadletter import DeadLetter, DeadLetterConfig, DeadLetterStore
from ingest.errors import RejectReason

DAY_NS = 86_400 * 10**9


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose data dir holds a store: an old message of 5 rejections (2 stored) and a new one."""
    (tmp_path / "data").mkdir()
    store = DeadLetterStore(tmp_path / "data" / "deadletter.db", DeadLetterConfig(max_rows_per_message=2))
    now = time.time_ns()
    old = [
        DeadLetter(
            now - 10 * DAY_NS, "t/a", b"{}", RejectReason.UNKNOWN_STATION, "no s", "json", f"s{i}", "ph", 1
        )
        for i in range(5)
    ]
    store.add_many(
        [*old, DeadLetter(now, "t/b", b"[", RejectReason.MALFORMED, "bad", "json", source_offset=2)]
    )
    store.close()
    path = tmp_path / "ecowatch.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n")
    return path


def test_list_shows_how_many_rejections_of_a_message_were_omitted(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows of a capped message end with a `+N omitted` column; others have none."""
    assert main(["deadletter", "list", "--config", str(config)]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(cols[2], cols[3], cols[-1]) for cols in lines] == [
        ("unknown_station", "s0", "+3 omitted"),
        ("unknown_station", "s1", "+3 omitted"),
        ("malformed", "-", "bad"),
    ]


def test_stats_prints_size_and_counts_and_prune_frees_room(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stats counts every rejection, stored or not; prune deletes old messages and keeps the counts."""
    assert main(["deadletter", "stats", "--config", str(config)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["rejections"] == {"unknown_station": 5, "malformed": 1}
    assert stats["unstored"] == {"unknown_station": 3}
    assert (stats["messages"], stats["rows"], stats["full"]) == (2, 3, False)
    assert main(["deadletter", "prune", "--older-than", "P7D", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "deleted 1 messages (2 dead letters)"
    assert main(["deadletter", "stats", "--config", str(config)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["messages"], stats["rows"]) == (1, 1)
    assert stats["rejections"] == {"unknown_station": 5, "malformed": 1}


def test_prune_refuses_what_is_not_a_duration(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped duration is a usage error, not a deletion."""
    with pytest.raises(SystemExit):
        main(["deadletter", "prune", "--older-than", "seven days", "--config", str(config)])
    assert "not a duration" in capsys.readouterr().err
