"""Files and directories recall creates: readable by their owner only, whatever the umask.

They hold people's conversations (the database, its copies, cassettes), so their
modes are set explicitly rather than left to the umask, which may be 0 or 022.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dirs(directory: Path) -> None:
    """Create `directory` and any missing parent as 0700; existing ones are left as they are
    (they are the operator's, e.g. ~ or /tmp)."""
    missing: list[Path] = []
    at = directory
    while not at.exists():
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours to change
        # mkdir's mode is masked by the umask (0o277 would give 0500): set it outright.
        os.chmod(path, PRIVATE_DIR)


def create_private(path: Path) -> None:
    """Create an empty file 0600 (in private directories if recall makes them); an existing file is kept."""
    private_dirs(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))
        os.chmod(path, PRIVATE_FILE)


def open_private_for_writing(path: Path, encoding: str = "utf-8") -> TextIO:
    """A text file opened for writing, truncated, with mode 0600 from its first byte on."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)  # the umask narrows os.open's mode only; an old file may have been wider
    return os.fdopen(fd, "w", encoding=encoding)
