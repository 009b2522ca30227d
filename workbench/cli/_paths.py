"""Output paths checked before a command does any work, so a bad `--out` / `-o` is one
line (and exit 2) instead of a traceback after minutes of compute, and nothing is left
behind. Checks only: nothing is created here."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import WorkbenchError
from ..outputs import check_parent
from ..runs.store import refuse_run_owned


def check_output_file(path: str | Path, flag: str, inputs: tuple = ()) -> Path:
    """A file we will write: not an existing folder, not one of the command's `inputs` (files
    it reads: writing the result over them loses the data), its folder creatable and writable."""
    path = Path(path).expanduser()
    refuse_run_owned(path, flag)
    for src in (Path(s).expanduser() for s in inputs if s is not None):
        if src.is_file() and src.resolve() == path.resolve():
            raise WorkbenchError(f"{flag} {path} is the input {src} itself; name another file")
    if path.is_dir():
        raise WorkbenchError(f"{flag} {path} is a folder; name a file to write")
    if path.exists() and not path.is_file():
        raise WorkbenchError(f"{flag} {path} exists and is not a regular file")
    check_parent(path, flag)
    if path.exists() and not os.access(path, os.W_OK):
        raise WorkbenchError(f"{flag} {path}: cannot overwrite it (permission denied)")
    return path


def check_output_dir(path: str | Path, flag: str) -> Path:
    """A folder we will create or write into."""
    path = Path(path).expanduser()
    refuse_run_owned(path, flag)
    if path.exists():
        if not path.is_dir():
            raise WorkbenchError(f"{flag} {path} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise WorkbenchError(f"{flag} {path}: cannot write in it (permission denied)")
        return path
    check_parent(path, flag)
    return path


def os_error_text(e: OSError) -> str:
    """An OSError as one line: what failed, on which path."""
    what = e.strerror or str(e) or type(e).__name__
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f)
    return f"{what}: {where}" if where else what


# How a full disk surfaces from the writers we call: OSError (ENOSPC, EDQUOT), safetensors'
# Rust error ("No space left on device (os error 28)"), torch.save ("file write failed").
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "os error 28", "file write failed")


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is the disk running out of space."""
    import errno

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(t in str(exc) for t in _DISK_FULL_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
