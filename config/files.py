"""The daemon's own files, created for its owner only, whatever the umask.

The write-ahead logs hold raw packets (HJ 212 packets carry their station's password), the offset
files and SQLite databases hold readings and alert history: nobody but the daemon's user needs
them. Files are created 0600 and folders 0700; a deployment whose backup or monitoring agent reads
them as a group sets `data_group_readable` (0640 / 0750). Modes are applied with fchmod/chmod
after creation, so a permissive umask (0000) cannot widen them. Existing files keep their mode:
an operator who chose one keeps it.

SQLite gives its -wal and -shm files the database file's own mode, so creating the database file
here first (`create_private_file`) is enough for all three.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

OWNER_FILE_MODE: Final = 0o600
OWNER_DIR_MODE: Final = 0o700
GROUP_FILE_MODE: Final = 0o640
GROUP_DIR_MODE: Final = 0o750

_modes = {"file": OWNER_FILE_MODE, "dir": OWNER_DIR_MODE}


def set_group_readable(readable: bool) -> None:
    """Whether files and folders created from now on are readable by the owner's group too."""
    _modes["file"] = GROUP_FILE_MODE if readable else OWNER_FILE_MODE
    _modes["dir"] = GROUP_DIR_MODE if readable else OWNER_DIR_MODE


def file_mode() -> int:
    return _modes["file"]


def make_private_dir(path: Path) -> None:
    """Create `path` and its missing parents with the private folder mode (existing ones are kept)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=_modes["dir"])
        except FileExistsError:
            continue  # created meanwhile by another thread or process
        os.chmod(folder, _modes["dir"])


def open_private(path: Path | str, flags: int) -> int:
    """`os.open` with O_CREAT and the private file mode, applied even under a permissive umask."""
    existed = os.path.exists(path)
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, _modes["file"])
    if not existed:
        try:
            os.fchmod(fd, _modes["file"])
        except BaseException:
            os.close(fd)
            raise
    return fd


def create_private_file(path: Path) -> None:
    """Create an empty `path` with the private mode unless it exists (before SQLite opens it)."""
    make_private_dir(path.parent)
    if not path.exists():
        os.close(open_private(path, os.O_WRONLY))
