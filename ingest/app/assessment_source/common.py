"""What the store readers share: the progress bar, items by measurement, streamed lines, short errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from tqdm import tqdm

from alerts.assessment_method.source import ResultsRequest
from config.parameters import Parameter

# An error message quotes at most this much of a server's answer.
MAX_DETAIL: Final = 300


def progress_bar(request: ResultsRequest, description: str, total: int) -> tqdm:
    """A bar on stderr over `total` queries (chunks), shown on a terminal unless the request says."""
    hidden = (not sys.stderr.isatty()) if request.progress is None else not request.progress
    return tqdm(
        total=total,
        unit="query",
        desc=description,
        disable=hidden,
        file=sys.stderr,
        dynamic_ncols=True,
    )


def items_by_measurement(items: Sequence[str], catalogue: Mapping[str, Parameter]) -> dict[str, list[str]]:
    """The request's items grouped by the measurement that stores them; unknown codes left out."""
    out: dict[str, list[str]] = {}
    for code in items:
        parameter = catalogue.get(code)
        if parameter is not None:
            out.setdefault(parameter.measurement, []).append(code)
    return out


def short(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "…"


def stream_lines(response: Any) -> Iterator[bytes]:
    """The lines of a streamed HTTP answer (urllib3, `preload_content=False`), as they arrive."""
    parts: list[bytes] = []
    for block in response.stream(1 << 16):
        start = 0
        while (end := block.find(b"\n", start)) >= 0:
            parts.append(block[start:end])
            line = b"".join(parts)
            parts = []
            if line.strip():
                yield line
            start = end + 1
        parts.append(block[start:])
    line = b"".join(parts)
    if line.strip():
        yield line
