"""Sender-controlled values as they may appear in a rejection's detail: short, and always cheap.

`repr` of a parsed JSON value is neither: a list nested 1 000 deep makes it raise RecursionError,
and a huge container costs its size before the cut. `shown` prints scalars as `repr` does, cut
to `limit` characters, and containers by type and size only.
"""

from __future__ import annotations


def shown(value: object, limit: int) -> str:
    """A repr-like text of `value`, at most `limit` characters; containers only by type and size."""
    if isinstance(value, list | dict | tuple | set):
        return f"<{type(value).__name__} of {len(value)}>"[:limit]
    if isinstance(value, str | bytes):
        return repr(value[: limit + 2])[:limit]
    if value is None or isinstance(value, bool | int | float):
        try:
            return repr(value)[:limit]
        except ValueError:  # an int past Python's digit limit for str()
            return f"<{type(value).__name__}>"
    return f"<{type(value).__name__}>"[:limit]
