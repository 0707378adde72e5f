"""A cluster worker's components are started again while the cluster answers as it does right
after its streams were created (no leader yet): three workers started at once on a fresh cluster
crashed on `NoStreamResponseError` (found by bench/cluster.py)."""

from __future__ import annotations

import nats.js.errors
import pytest

from ingest.app import cluster_worker


def test_a_component_is_started_again_while_the_cluster_elects_its_leaders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two 'no stream response' answers, then a start that works: started, after two retries."""
    monkeypatch.setattr(cluster_worker.time, "sleep", lambda _s: None)
    answers: list[Exception | None] = [nats.js.errors.NoStreamResponseError(), TimeoutError(), None]
    calls = 0

    def start() -> None:
        nonlocal calls
        calls += 1
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    cluster_worker._start("ownership", start)
    assert calls == 3


def test_other_errors_and_a_cluster_that_never_answers_end_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration error is not retried; a cluster without leaders past the deadline raises."""
    monkeypatch.setattr(cluster_worker.time, "sleep", lambda _s: None)

    def misconfigured() -> None:
        raise ValueError("the cluster was set up with 12 partitions, this worker with 8")

    with pytest.raises(ValueError, match="12 partitions"):
        cluster_worker._start("ownership", misconfigured)

    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr(cluster_worker.time, "monotonic", lambda: float(next(clock)))

    def never() -> None:
        raise nats.js.errors.NoStreamResponseError()

    with pytest.raises(nats.js.errors.NoStreamResponseError):
        cluster_worker._start("ownership", never)
