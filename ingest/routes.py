"""The HTTP route contract: what a component gives the daemon's HTTP server, and gets from it.

Routes are exact (method, path) pairs mapped to a `Handler`; a handler gets a `Request` (the
parsed query and, for POST, the JSON body) and returns (status, JSON value), a `RawBody` or an
`EventStream`. Handlers validate their input and raise `BadRequest` (400) or `NotFound` (404);
`int_param` and `str_param` read bounded query parameters. This module is part of the contract
`alerts` may use (with `ingest.model` and `ingest.errors`); the server itself is in `ingest.app`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    body: Any
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RawBody:
    """A non-JSON answer (a page, a script, a stylesheet)."""

    content_type: str
    body: bytes
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class EventStream:
    """A server-sent events answer: each chunk the iterator yields is written and flushed at once.

    The iterator should end when the client goes away (a write fails or makes no progress for
    `http.send_timeout`) or the service stops; the server then calls its `close()`, if it has one.
    """

    chunks: Iterator[bytes]


Handler = Callable[[Request], tuple[int, Any]]


class BadRequest(ValueError):
    """The request is malformed; answered with 400 and the message."""


class NotFound(LookupError):
    """The addressed object does not exist; answered with 404."""


def int_param(query: Mapping[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be within [{low}, {high}]")
    return value


def str_param(query: Mapping[str, list[str]], name: str, max_length: int = 64) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values[0]) > max_length:
        raise BadRequest(f"{name} is longer than {max_length} characters")
    return values[0]
