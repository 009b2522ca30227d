"""The folder an output path will be created in: it must be a folder we may write in. Shared
by the CLI's output checks (`cli/_paths.py`) and merge/export (`merging/base.py`); checks
only, nothing is created here."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import WorkbenchError


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_parent(path: Path, flag: str) -> None:
    """One line when `path` cannot be created: its nearest existing ancestor is a file, or not writable."""
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise WorkbenchError(f"{flag} {path}: {anchor} is a file, not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise WorkbenchError(f"{flag} {path}: cannot write in {anchor} (permission denied)")
