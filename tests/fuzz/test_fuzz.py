"""The fuzzer's runs: 10^4 payloads per format in the default suite, 10^6 behind the `fuzz` marker.

Per format, the default suite feeds `DEFAULT_PAYLOADS - HYPOTHESIS_EXAMPLES` messages from the
seeded plain-loop stream and `HYPOTHESIS_EXAMPLES` from the hypothesis strategies (structured and
mutated), together 10^4. The long run feeds `ECOWATCH_FUZZ_PAYLOADS` (10^6) from the stream with
a progress bar. Every run prints its summary (counts by kind, outcome and reason, the most dead
letters one message gave, the slowest message, RSS, crashes and findings) and fails on any crash
or finding, quoting the shortest payload of each. A run is reproduced by its format and seed
(`ECOWATCH_FUZZ_SEED`); valid messages are dated relative to now, never to a fixed day.

    .venv/bin/pytest -p no:cacheprovider tests/fuzz -s        # with the summaries
    scripts/test.sh -m fuzz tests/fuzz                        # the 10^6 runs
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from tqdm import tqdm

from tests.fuzz.generators import FORMATS, Universe, universe_now
from tests.fuzz.harness import FuzzHarness
from tests.fuzz.strategies import Message, messages
from tests.fuzz.stream import fuzz_stream

SEED: Final = int(os.environ.get("ECOWATCH_FUZZ_SEED", "13"))
DEFAULT_PAYLOADS: Final = 10_000
# Per format; hypothesis examples count toward the default 10^4 (each is written and read back
# on its own, so they cost a few times a loop message).
HYPOTHESIS_EXAMPLES: Final = 300
LONG_PAYLOADS: Final = int(os.environ.get("ECOWATCH_FUZZ_PAYLOADS", "1000000"))
FUZZ_SETTINGS: Final = settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def _run(fmt: str, count: int, folder: Path, progress: Any = None) -> FuzzHarness:
    now = universe_now()
    harness = FuzzHarness(folder, now)
    harness.run(fuzz_stream(fmt, Universe.of(harness.registry, now), SEED), count, progress)
    return harness


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzHarness]:
    """One harness for the hypothesis examples of the module (each example is checked on its own)."""
    shared = FuzzHarness(tmp_path_factory.mktemp("fuzz-hypothesis"), universe_now())
    yield shared
    shared.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_payload_is_accepted_or_rejected_with_a_reason(fmt: str, tmp_path: Path) -> None:
    """Thousands of hostile, mutated and valid payloads: nothing escapes, everything is accounted for."""
    harness = _run(fmt, DEFAULT_PAYLOADS - HYPOTHESIS_EXAMPLES, tmp_path)
    print(harness.summary(f"{fmt} (seed {SEED})"))
    problems = harness.problems()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("fmt", FORMATS)
def test_structured_hostile_messages_are_accepted_or_rejected_with_a_reason(
    fmt: str, harness: FuzzHarness
) -> None:
    """Hypothesis-built messages (hostile values anywhere, or mutated bytes) pass every invariant."""

    @FUZZ_SETTINGS
    @given(message=messages(fmt, Universe.of(harness.registry, harness.now)))
    def check(message: Message) -> None:
        checked = harness.check(fmt, "hypothesis", *message)
        assert not checked.problems, "\n".join(checked.problems)

    check()


@pytest.mark.fuzz
@pytest.mark.timeout(6 * 3600)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_million_payloads_per_format(fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The long run: 10^6 payloads of one format, with a progress bar and a summary at the end."""
    with capsys.disabled():
        with tqdm(
            total=LONG_PAYLOADS, desc=f"fuzz {fmt}", unit="msg", mininterval=10.0, file=sys.stderr
        ) as bar:
            harness = _run(fmt, LONG_PAYLOADS, tmp_path, bar)
        print("\n" + harness.summary(f"{fmt} (seed {SEED})"), flush=True)
    problems = harness.problems()
    assert not problems, "\n".join(problems)
