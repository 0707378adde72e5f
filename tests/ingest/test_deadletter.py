"""The dead-letter store keeps every rejection durably and once per raw-log record."""

from __future__ import annotations

from pathlib import Path

from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.errors import RejectReason


def letter(
    offset: int | None, reason: RejectReason = RejectReason.MALFORMED, parameter: str | None = None
) -> DeadLetter:
    return DeadLetter(
        received_ns=1,
        topic="t/1",
        payload=b"\xff\x00raw",
        reason=reason,
        detail="why",
        format="json",
        station_id="st",
        parameter=parameter,
        source_offset=offset,
    )


def test_rows_survive_reopening_with_payload_and_reason(tmp_path: Path) -> None:
    """What was stored is read back after a reopen, bytes intact."""
    store = DeadLetterStore(tmp_path / "dl.db")
    store.add_many([letter(1), letter(2, RejectReason.BAD_CRC)])
    store.close()
    reopened = DeadLetterStore(tmp_path / "dl.db")
    rows = reopened.list()
    assert [(r.reason, r.payload, r.source_offset) for r in rows] == [
        ("malformed", b"\xff\x00raw", 1),
        ("bad_crc", b"\xff\x00raw", 2),
    ]
    assert reopened.counts_by_reason() == {"malformed": 1, "bad_crc": 1}
    assert rows[0].to_json()["payload_hex"] == "ff00726177"


def test_reprocessing_the_same_record_adds_nothing(tmp_path: Path) -> None:
    """At-least-once processing of the raw log does not duplicate dead letters."""
    store = DeadLetterStore(tmp_path / "dl.db")
    batch = [letter(7, parameter="do"), letter(7, parameter="ph")]
    store.add_many(batch)
    store.add_many(batch)
    assert store.count() == 2
    # Rows without a raw offset (sink refusals) are never merged.
    store.add_many([letter(None), letter(None)])
    assert store.count() == 4


def test_list_filters_and_pages(tmp_path: Path) -> None:
    """list() filters by reason and pages by id; mark_replayed hides rows on request."""
    store = DeadLetterStore(tmp_path / "dl.db")
    store.add_many(
        [letter(i, RejectReason.OUT_OF_RANGE if i % 2 else RejectReason.MALFORMED) for i in range(10)]
    )
    odd = store.list(reason="out_of_range")
    assert len(odd) == 5
    page = store.list(limit=3, after_id=odd[0].id or 0)
    assert [r.id for r in page] == [(odd[0].id or 0) + k for k in (1, 2, 3)]
    store.mark_replayed([r.id or 0 for r in odd], 99)
    assert len(store.list(include_replayed=False)) == 5
    assert len(list(store.iter_all())) == 10
