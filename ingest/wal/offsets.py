"""Consumers' committed offsets: one small file per consumer, `<dir>/offsets/<name>.offset`.

Each file holds the consumer's committed offset as ASCII digits and a newline. A commit writes a
temporary file, fsyncs it, renames it over the old one and fsyncs the directory, so a crash leaves
either the old offset or the new one, never a torn file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from config.files import make_private_dir, open_private

# Names become file names: no separators, no leading dot, bounded length.
CONSUMER_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_SUFFIX: Final = ".offset"
_TMP_SUFFIX: Final = ".tmp"


def validate_consumer_name(name: str) -> str:
    if not CONSUMER_NAME.fullmatch(name):
        raise ValueError(f"invalid consumer name {name!r}: must match {CONSUMER_NAME.pattern}")
    return name


def fsync_directory(path: Path) -> None:
    """Make a file creation, rename or deletion in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OffsetStore:
    """Reads and atomically writes the committed offset of each consumer."""

    def __init__(self, directory: Path, *, fsync: bool) -> None:
        self._directory = directory
        self._fsync = fsync
        make_private_dir(directory)

    def load(self) -> dict[str, int]:
        """Every stored offset; removes temporary files a crash left behind."""
        offsets: dict[str, int] = {}
        for path in self._directory.iterdir():
            if path.name.endswith(_TMP_SUFFIX):
                path.unlink(missing_ok=True)
            elif path.name.endswith(_SUFFIX):
                name = path.name.removesuffix(_SUFFIX)
                text = path.read_text(encoding="ascii").strip()
                # A hand-edited or foreign file: refuse to guess where that consumer stands.
                if not CONSUMER_NAME.fullmatch(name) or not text.isdigit():
                    raise ValueError(f"unreadable consumer offset file {path}: {text[:40]!r}")
                offsets[name] = int(text)
        return offsets

    def store(self, name: str, offset: int) -> None:
        path = self._directory / f"{name}{_SUFFIX}"
        tmp = path.with_name(path.name + _TMP_SUFFIX)
        fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, b"%d\n" % offset)
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if self._fsync:
            fsync_directory(self._directory)

    def remove(self, name: str) -> None:
        (self._directory / f"{name}{_SUFFIX}").unlink(missing_ok=True)
        if self._fsync:
            fsync_directory(self._directory)
