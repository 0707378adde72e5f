"""What the store readers share: the progress bar, items by measurement, streamed answers, short errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import urllib3
from tqdm import tqdm

from alerts.assessment_method.source import ResultsRequest, SourceError
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


def open_stream(
    pool: Any,
    method: str,
    url: str,
    *,
    description: str,
    timeout: float,
    headers: Mapping[str, str],
    body: bytes | None = None,
    error_text: Callable[[bytes], object] = lambda answer: answer[:MAX_DETAIL],
) -> Any:
    """A streamed answer (status 200, `preload_content=False`) to release when read; otherwise a
    `SourceError` naming `description` and what the server said (`error_text` of its body)."""
    try:
        response = pool.request(
            method,
            url,
            body=body,
            headers=headers,
            timeout=urllib3.Timeout(connect=min(10.0, timeout), read=timeout),
            preload_content=False,
        )
    except Exception as exc:  # urllib3 and socket errors alike
        raise SourceError(f"{description}: {type(exc).__name__}: {short(exc)}") from None
    if response.status != 200:
        try:
            text = error_text(response.read())
        except urllib3.exceptions.HTTPError as exc:
            raise SourceError(f"{description}: unreadable answer: {short(exc)}") from None
        finally:
            response.release_conn()
        raise SourceError(f"{description}: HTTP {response.status}: {short(text)}")
    return response


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
