"""The fuzz harness: one payload at a time through the daemon's processing code, invariants checked.

`FuzzHarness` builds the processor core as the daemon does (`ingest.app.daemon.build_processor_core`
from default settings and the demo registry, pickled and unpickled as the decode worker receives
it) and runs each message through `process_batch`, the function the worker runs, and its results
through pickle, as they cross the worker's pipe. Then it checks:

- nothing escapes, and nothing is contained as `internal_error` (the processor catches any
  exception and dead-letters it so; for the fuzzer that is still a crash, with the traceback
  captured from `ingest.internal_errors.report`);
- every message yields readings and/or dead letters, each letter's reason a `RejectReason`;
- a message the generator built valid is accepted whole;
- every reading has a finite float value in its parameter's range, a known flag, a station of
  the registry, `time_ns` in int64 and within the validation window; its record decodes back,
  re-encodes to the same readings and renders as line protocol;
- every dead letter's payload is at most `validation.max_payload_bytes`.

Readings and dead letters are written in windows of `flush_every` messages to the SQLite sink and
the dead-letter store (made as the daemon makes them, in the harness's folder); every reading is
read back from SQLite by the store's key (station, parameter, kind of value, time) and compared,
its below-detection and time-corrected marks included. Every `rotate_every` messages both files
are closed, checked and removed, so a run of 10^6 messages does not fill the disk: no stored
message may have more than `LETTERS_PER_MESSAGE_BOUND` rows, the dead-letter file must stay
within `deadletter_bytes_bound` of what was rejected, and the store must never fail to store (it
does not raise; it counts what it could not store). RSS is sampled to bound memory over the run.
"""

from __future__ import annotations

import math
import pickle
import sqlite3
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson
from structlog.testing import capture_logs

import ingest
from config.registry import Registry
from config.times import ns, to_ns
from ingest import internal_errors, telemetry
from ingest.app.daemon import build_processor_core
from ingest.app.settings import Settings, load_settings
from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.errors import RejectReason
from ingest.model import DATA_KIND_TAG, DataFlag, DataKind, Reading
from ingest.processor import MessageProcessor, process_batch
from ingest.records import decode_readings, encode_message, encode_readings, line_protocol, readings_count
from ingest.sinks import Sink, make_sink
from tests.fuzz.hostile import CATALOGUE, INT64_MAX, INT64_MIN

# The folder holding the ingest package: where "our code" is, for crash locations.
REPO: Final = Path(ingest.__file__).resolve().parent.parent
REASONS: Final = frozenset(reason.value for reason in RejectReason)
FLAGS: Final = frozenset(flag.value for flag in DataFlag)
# Dead-letter rows one message may leave in the store. The issue asks for a cap on rows per
# message (the rest counted); a valid message holds at most a few dozen readings, so a hundred
# rows is generous and still bounds a 64 KB message of 8 960 rejections to a few KiB of rows.
# The store's default `deadletter.max_rows_per_message` is this.
LETTERS_PER_MESSAGE_BOUND: Final = 100
# RSS may grow this much over a run after warm-up. The caches (routes, tags, parsed times, decoded
# records) are bounded by entries; a 10^4 run grows ~15 MiB. This catches a cache bounded by count
# but not by bytes (the route cache grew 162 MiB over 10^6 JSON messages, 0.3 % with 64 KB topics).
MEMORY_GROWTH_BOUND: Final = 128 * 2**20
INTERNAL_ERROR: Final = "internal_error"


def deadletter_bytes_bound(payload_bytes: int, rows: int) -> int:
    """What a dead-letter file may hold: each rejected payload about once, plus row overhead.

    Twice the clipped payloads of the rejected messages (SQLite pages are not full), 1 KiB per
    row for the detail and indexes, and 1 MiB for the schema: a message of many rejected readings
    must not store its payload once per reading.
    """
    return 2 * payload_bytes + 1024 * rows + 2**20


def _unstored_for_errors() -> float:
    """Rejections the dead-letter store counted but could not store because it failed (a metric)."""
    return sum(
        sample.value
        for family in telemetry.DEADLETTERS_UNSTORED.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("cause") == "error"
    )


def rss_bytes() -> int:
    """The resident set size of this process, from /proc."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Example:
    """The shortest payload seen for a finding, with how often the finding came up."""

    format: str
    kind: str
    topic: str
    payload: bytes
    detail: str
    count: int = 1

    def offer(self, other: Example) -> None:
        self.count += 1
        if len(other.payload) + len(other.topic) < len(self.payload) + len(self.topic):
            self.format, self.kind, self.topic, self.payload, self.detail = (
                other.format,
                other.kind,
                other.topic,
                other.payload,
                other.detail,
            )

    def describe(self, limit: int = 300) -> str:
        payload = self.payload if len(self.payload) <= limit else self.payload[:limit] + b"..."
        topic = self.topic if len(self.topic) <= 120 else self.topic[:120] + "..."
        return (
            f"x{self.count} [{self.format}/{self.kind}] {self.detail}\n"
            f"    topic {topic!r}\n    payload ({len(self.payload)} bytes) {payload!r}"
        )


@dataclass
class RunStats:
    """Counts of one run, for its summary."""

    payloads: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    readings: int = 0
    letters: int = 0
    max_letters: int = 0
    max_letters_example: str = ""
    max_rows_per_message: int = 0
    slowest_seconds: float = 0.0
    slowest_example: str = ""
    deadletter_rows_stored: int = 0
    max_deadletter_file_bytes: int = 0
    rss_start: int = 0
    rss_peak: int = 0
    rss_end: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Checked:
    """What one message gave: its problems, its dead letters by reason, its readings stored."""

    problems: list[str]
    reasons: Counter[str]
    readings: int


def _location(exc: BaseException) -> str:
    """Where `exc` was raised: the deepest frame in our code, and the deepest frame overall."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    ours = [f for f in frames if f.filename.startswith(str(REPO)) and "/tests/" not in f.filename]
    deepest = frames[-1]
    where = ours[-1] if ours else deepest
    text = (
        f"{Path(where.filename).relative_to(REPO) if ours else where.filename}:{where.lineno} in {where.name}"
    )
    if ours and where is not deepest:
        text += f" (raised in {Path(deepest.filename).name}:{deepest.lineno} {deepest.name})"
    return text


@contextmanager
def watching_internal_errors(seen: list[tuple[str, BaseException]]) -> Iterator[None]:
    """Record every exception the ingest path contains (stage and exception, with its traceback)."""
    original = internal_errors.report

    def report(stage: str, exc: BaseException, **context: object) -> str:
        seen.append((stage, exc))
        # Its log line would render the traceback with its locals: a 60 KB payload, nested 1000 deep.
        with capture_logs():
            return original(stage, exc, **context)

    internal_errors.report = report
    try:
        yield
    finally:
        internal_errors.report = original


def fuzz_settings(data_dir: Path) -> Settings:
    """Default settings, as a daemon without a config file has them (the demo registry)."""
    return load_settings(None, data_dir=data_dir)


class FuzzHarness:
    """Runs messages through the processor core, the readings record, SQLite and the dead-letter store."""

    def __init__(
        self, folder: Path, now: datetime, *, flush_every: int = 500, rotate_every: int = 5000
    ) -> None:
        self.folder = folder
        self.settings = fuzz_settings(folder / "data")
        self.registry = Registry.load(self.settings.registry)
        # As the decode worker gets it: pickled by the daemon, unpickled in the child.
        core = build_processor_core(self.settings, self.registry)
        self.core: MessageProcessor = pickle.loads(pickle.dumps(core))
        self.now = now
        self.now_ns = to_ns(now)
        validation = self.settings.validation
        self.max_payload = validation.max_payload_bytes
        self.oldest_ns = self.now_ns - ns(validation.max_past_age)
        self.newest_ns = self.now_ns + ns(validation.max_future_skew)
        self.station_ids = frozenset(self.registry)
        self.flush_every = flush_every
        self.rotate_every = rotate_every
        self.stats = RunStats()
        self.crashes: dict[tuple[str, str, str], Example] = {}
        self.findings: dict[str, Example] = {}
        self._offset = 0
        self._contained: list[tuple[str, BaseException]] = []
        # The current window: readings to write (and the message each came from), letters to store.
        self._window: list[tuple[Example, list[Reading]]] = []
        self._letters: list[DeadLetter] = []
        self._rejected_payload_bytes = 0
        self._since_rotation = 0
        self._generation = 0
        self._sink: Sink | None = None
        self._deadletters: DeadLetterStore | None = None
        self._open_stores()

    # --- the run ---------------------------------------------------------------------------------
    def run(
        self, messages: Iterator[tuple[str, str, str, bytes]], count: int, progress: Any = None
    ) -> RunStats:
        """Feed `count` (format, kind, topic, payload) messages; `progress` is a tqdm bar or None."""
        stats = self.stats
        started = time.monotonic()
        with watching_internal_errors(self._contained):
            for index in range(count):
                fmt, kind, topic, payload = next(messages)
                self.feed(fmt, kind, topic, payload)
                if index == min(2000, count // 10):
                    stats.rss_start = rss_bytes()  # after warm-up: imports, caches, first pages
                if index % 5000 == 0:
                    stats.rss_peak = max(stats.rss_peak, rss_bytes())
                if progress is not None:
                    progress.update(1)
            self.flush()
        self.close()
        stats.rss_end = rss_bytes()
        stats.rss_peak = max(stats.rss_peak, stats.rss_end)
        stats.seconds = time.monotonic() - started
        return stats

    def check(self, fmt: str, kind: str, topic: str, payload: bytes) -> Checked:
        """One message on its own, written and read back at once: what it gave, and its problems."""
        self.crashes.clear()
        self.findings.clear()
        before = Counter(self.stats.reasons)
        readings = self.stats.readings
        with watching_internal_errors(self._contained):
            self.feed(fmt, kind, topic, payload)
            self.flush()
        self._check_rows_per_message(Example(fmt, kind, topic, payload, ""))
        return Checked(self.problems(), self.stats.reasons - before, self.stats.readings - readings)

    def feed(self, fmt: str, kind: str, topic: str, payload: bytes) -> None:
        """One message through the processor and the checks; its readings and letters join the window."""
        stats = self.stats
        stats.payloads += 1
        stats.kinds[kind] += 1
        offset = self._offset
        self._offset += 1
        self._since_rotation += 1
        example = Example(fmt, kind, topic, payload, "")
        record = encode_message(topic.encode("utf-8", "replace"), payload, self.now_ns)
        self._contained.clear()
        started = time.perf_counter()
        try:
            results = process_batch(self.core, [(offset, record)], self.now_ns)
        except Exception as exc:
            self._crash(example, "escaped", exc)
            return
        try:
            # Back to the daemon over the worker's pipe: the results must pickle.
            results = pickle.loads(pickle.dumps(results))
        except Exception as exc:
            self._crash(example, "worker_pipe", exc)
            return
        finally:
            elapsed = time.perf_counter() - started
            if elapsed > stats.slowest_seconds:
                stats.slowest_seconds = elapsed
                stats.slowest_example = f"{fmt}/{kind}, {len(payload)} bytes, topic {topic[:60]!r}"
        for stage, contained in self._contained:
            self._crash(example, stage, contained)
        ((encoded, accepted, letters, outcome),) = results
        stats.outcomes[outcome] += 1
        self._check_letters(example, letters, accepted)
        if kind == "valid" and (letters or encoded is None):
            reasons = sorted({str(d.reason) for d in letters})
            self._finding(example, "valid message not accepted whole", f"reasons {reasons}: {letters[:1]}")
        if encoded is not None:
            readings = self._check_record(example, encoded, accepted)
            if readings:
                self._window.append((example, readings))
                stats.readings += len(readings)
        if len(self._window) + len(self._letters) >= self.flush_every:
            self.flush()

    # --- per-message checks ----------------------------------------------------------------------
    def _check_letters(self, example: Example, letters: list[DeadLetter], accepted: int) -> None:
        stats = self.stats
        if not letters and not accepted:
            self._finding(example, "message yields neither readings nor dead letters", "")
        stats.letters += len(letters)
        if len(letters) > stats.max_letters:
            stats.max_letters = len(letters)
            stats.max_letters_example = f"{example.format}/{example.kind}, {len(example.payload)} bytes"
        contained = False
        for letter in letters:
            reason = str(letter.reason)
            stats.reasons[reason] += 1
            if reason not in REASONS:
                self._finding(example, "dead letter without a RejectReason", repr(letter.reason))
            if reason == INTERNAL_ERROR:
                contained = True
            if len(letter.payload) > self.max_payload:
                self._finding(example, "dead letter payload over max_payload_bytes", str(len(letter.payload)))
        if contained and not self._contained:
            self._finding(example, "internal_error letter without a reported exception", letters[0].detail)
        if letters:
            self._rejected_payload_bytes += min(len(example.payload), self.max_payload)
            self._letters.extend(letters)

    def _check_record(self, example: Example, encoded: bytes, accepted: int) -> list[Reading]:
        try:
            readings = decode_readings(encoded)
            again = decode_readings(encode_readings(readings))
            count = readings_count(encoded)
            lines = line_protocol(encoded)
        except Exception as exc:
            self._crash(example, "readings_record", exc)
            return []
        if not (count == accepted == len(readings)):
            self._finding(example, "readings record count mismatch", f"{count}/{accepted}/{len(readings)}")
        if again != readings:
            self._finding(example, "readings record does not round-trip", f"{readings[:1]} != {again[:1]}")
        if not lines:
            self._finding(example, "accepted readings without line protocol", repr(readings[:2]))
        good: list[Reading] = []
        for reading in readings:
            problem = self._reading_problem(reading)
            if problem is not None:
                self._finding(example, f"accepted reading: {problem}", repr(reading)[:300])
            else:
                good.append(reading)
        return good

    def _reading_problem(self, r: Reading) -> str | None:
        parameter = CATALOGUE.get(r.parameter)
        if type(r.value) is not float or not math.isfinite(r.value):
            return "value is not a finite float"
        if type(r.time_ns) is not int or not INT64_MIN <= r.time_ns <= INT64_MAX:
            return "time_ns outside int64"
        if not self.oldest_ns <= r.time_ns <= self.newest_ns:
            return "time outside the validation window"
        if parameter is None or not parameter.in_range(r.value):
            return "unknown parameter or value outside its range"
        if r.unit != parameter.unit or r.measurement != parameter.measurement:
            return "unit or measurement not the catalogue's"
        if str(r.flag) not in FLAGS:
            return "unknown flag"
        if r.station_id not in self.station_ids:
            return "station not in the registry"
        if not all(type(k) is str and type(v) is str for k, v in r.tags):
            return "tags are not strings"
        return None

    # --- windows: SQLite and the dead-letter store -----------------------------------------------
    def flush(self) -> None:
        """Write the window's readings and letters, read the readings back, maybe rotate the files."""
        window, letters = self._window, self._letters
        self._window, self._letters = [], []
        if window:
            self._write_readings(window)
        if letters:
            assert self._deadletters is not None
            example = Example("*", "window", letters[0].topic, letters[0].payload, "")
            failed_before = _unstored_for_errors()
            try:
                self._deadletters.add_many(letters)
            except Exception as exc:
                self._crash(example, "deadletter_store", exc)
            # The store never raises: a failure counts the letters as unstored for an error instead.
            if (lost := _unstored_for_errors() - failed_before) > 0:
                example.detail = f"{lost} letters of the window not stored: the store failed"
                self.findings.setdefault("dead-letter store failed", example)
        if self._since_rotation >= self.rotate_every:
            self._rotate()

    def _write_readings(self, window: list[tuple[Example, list[Reading]]]) -> None:
        assert self._sink is not None
        batch = [reading for _, readings in window for reading in readings]
        try:
            self._sink.write(batch)
        except Exception:
            # Narrow it down to the messages whose readings the sink refuses.
            good: list[tuple[Example, list[Reading]]] = []
            for example, readings in window:
                try:
                    self._sink.write(readings)
                except Exception as exc:
                    self._crash(example, "sqlite_sink", exc)
                else:
                    good.append((example, readings))
            window = good
        # The store's key: a later reading of the same point (same kind) overwrites an earlier one.
        expected: dict[tuple[str, str, str, int], tuple[Example, Reading]] = {}
        for example, readings in window:
            for reading in readings:
                kind = dict(reading.tags).get(DATA_KIND_TAG, DataKind.REALTIME.value)  # as the sink reads it
                key = (reading.station_id, reading.parameter, kind, reading.time_ns)
                expected[key] = (example, reading)
        self._read_back(expected)

    def _read_back(self, expected: dict[tuple[str, str, str, int], tuple[Example, Reading]]) -> None:
        path = self.folder / f"readings-{self._generation}.db"
        with closing(sqlite3.connect(path)) as db:
            for key, (example, reading) in expected.items():
                row = db.execute(
                    "SELECT measurement, value, unit, flag, tags, below_dl, time_corrected FROM readings"
                    " WHERE station_id = ? AND parameter = ? AND data_kind = ? AND time_ns = ?",
                    key,
                ).fetchone()
                if row is None:
                    self._finding(example, "reading not stored in SQLite", repr(reading)[:300])
                    continue
                measurement, value, unit, flag, tags, below_dl, time_corrected = row
                stored = (
                    measurement,
                    value,
                    unit,
                    flag,
                    orjson.loads(tags),
                    bool(below_dl),
                    bool(time_corrected),
                )
                wanted = (
                    reading.measurement,
                    reading.value,
                    reading.unit,
                    str(reading.flag),
                    dict(reading.tags),
                    reading.below_dl,
                    reading.time_corrected,
                )
                if stored != wanted:
                    self._finding(example, "SQLite holds another reading", f"{stored} != {wanted}")

    def _open_stores(self) -> None:
        sink_config = self.settings.effective_sinks()[0]
        path = self.folder / f"readings-{self._generation}.db"
        self._sink = make_sink(sink_config.model_copy(update={"path": path}))
        path = self.folder / f"deadletter-{self._generation}.db"
        self._deadletters = DeadLetterStore(path, self.settings.deadletter)
        self._last_row_id = 0  # the rows up to here have been looked at

    def _close_stores(self) -> None:
        if self._sink is not None:
            self._sink.close()
        if self._deadletters is not None:
            self._deadletters.close()
        self._sink = self._deadletters = None

    def _rotate(self) -> None:
        self._check_deadletter_file()
        self._close_stores()
        for path in self.folder.glob(f"*-{self._generation}.db*"):
            path.unlink()
        self._generation += 1
        self._since_rotation = 0
        self._rejected_payload_bytes = 0
        self._open_stores()

    def _check_deadletter_file(self) -> None:
        path = self.folder / f"deadletter-{self._generation}.db"
        if self._deadletters is None or not path.exists():
            return
        rows = self._deadletters.count()
        self.stats.deadletter_rows_stored += rows
        self._check_rows_per_message(Example("*", "window", "", b"", ""))
        self._deadletters.close()
        self._deadletters = None
        size = sum(p.stat().st_size for p in self.folder.glob(f"deadletter-{self._generation}.db*"))
        self.stats.max_deadletter_file_bytes = max(self.stats.max_deadletter_file_bytes, size)
        bound = deadletter_bytes_bound(self._rejected_payload_bytes, rows)
        if size > bound:
            example = Example("*", "window", "", b"", f"{size} bytes > bound {bound} ({rows} rows)")
            self.findings.setdefault("dead-letter file larger than its rejected payloads", example)

    def _check_rows_per_message(self, example: Example) -> None:
        """Count the rows stored since the last look, per message; no message may pass the bound."""
        assert self._deadletters is not None
        # Every message's rows are added in one call, before any look: none is split between looks.
        rows_of: Counter[int | None] = Counter()
        while batch := self._deadletters.list(after_id=self._last_row_id, limit=1000):
            rows_of.update(letter.message_id for letter in batch)
            self._last_row_id = batch[-1].id or self._last_row_id
        most = max(rows_of.values(), default=0)
        self.stats.max_rows_per_message = max(self.stats.max_rows_per_message, most)
        if most > LETTERS_PER_MESSAGE_BOUND:
            self._finding(example, "too many dead-letter rows for one message", f"{most} rows")

    def close(self) -> None:
        self._check_deadletter_file()
        self._close_stores()

    # --- findings --------------------------------------------------------------------------------
    def _crash(self, example: Example, stage: str, exc: BaseException) -> None:
        location = _location(exc)
        key = (stage, type(exc).__name__, location)
        detail = f"{stage}: {type(exc).__name__}: {str(exc)[:200]} at {location}"
        found = Example(example.format, example.kind, example.topic, example.payload, detail)
        if key in self.crashes:
            self.crashes[key].offer(found)
        else:
            self.crashes[key] = found

    def _finding(self, example: Example, what: str, detail: str) -> None:
        found = Example(example.format, example.kind, example.topic, example.payload, detail[:300])
        if what in self.findings:
            self.findings[what].offer(found)
        else:
            self.findings[what] = found

    def problems(self) -> list[str]:
        """Every crash and finding of the run, one text each (empty when the run was clean)."""
        out = [f"CRASH {example.describe()}" for example in self.crashes.values()]
        out += [f"FINDING {what}: {example.describe()}" for what, example in self.findings.items()]
        grown = self.stats.rss_end - self.stats.rss_start
        if self.stats.rss_start and grown > MEMORY_GROWTH_BOUND:
            out.append(
                f"FINDING memory grew {grown / 2**20:.0f} MiB over the run (bound {MEMORY_GROWTH_BOUND / 2**20:.0f})"
            )
        return out

    def summary(self, title: str) -> str:
        s = self.stats
        rate = s.payloads / s.seconds if s.seconds else 0.0
        lines = [
            f"=== fuzz {title}: {s.payloads} payloads in {s.seconds:.1f} s ({rate:.0f}/s) ===",
            f"kinds: {dict(s.kinds)}",
            f"outcomes: {dict(s.outcomes)}; readings accepted {s.readings}; dead letters {s.letters}",
            f"rejections by reason: {dict(s.reasons.most_common())}",
            f"most rejections from one message: {s.max_letters} ({s.max_letters_example}); most "
            f"dead-letter rows stored for one message: {s.max_rows_per_message}",
            f"dead-letter rows stored {s.deadletter_rows_stored}; largest dead-letter file "
            f"{s.max_deadletter_file_bytes / 2**20:.1f} MiB",
            f"slowest message: {s.slowest_seconds * 1000:.1f} ms ({s.slowest_example})",
            f"RSS after warm-up {s.rss_start / 2**20:.0f} MiB, peak {s.rss_peak / 2**20:.0f} MiB, "
            f"end {s.rss_end / 2**20:.0f} MiB",
            f"crashes: {len(self.crashes)} distinct, findings: {len(self.findings)} distinct",
        ]
        lines += self.problems()
        return "\n".join(lines)
