"""Find the notebooks under the paths `workbench check` is given."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import WorkbenchError

# A folder holding this file is a `workbench check` output folder: its executed copies are
# never collected again.
OUTPUT_MARKER = ".workbench-check"
_SKIP_DIRS = {".ipynb_checkpoints", "__pycache__", "node_modules", "site-packages"}


def find_notebooks(paths: Iterable[str | Path]) -> list[Path]:
    """Notebooks named directly, plus every `*.ipynb` below each folder (sorted, recursive),
    skipping hidden folders, checkpoints and earlier `workbench check` outputs. Raises
    WorkbenchError for a path that does not exist or a file that is not a notebook, and
    when nothing is found."""
    found: list[Path] = []
    paths = list(paths)
    if not paths:
        raise WorkbenchError("no paths given")
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(_walk(path))
        elif path.is_file():
            if path.suffix != ".ipynb":
                raise WorkbenchError(f"{path}: expected a .ipynb notebook or a folder")
            found.append(path)
        else:
            raise WorkbenchError(f"{path} does not exist")
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    if not unique:
        raise WorkbenchError(f"no notebooks (*.ipynb) found under {', '.join(str(p) for p in paths)}")
    return sorted(unique.values(), key=lambda p: str(p))


def _walk(folder: Path) -> list[Path]:
    if (folder / OUTPUT_MARKER).exists():
        return []
    out = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith(".") or child.name in _SKIP_DIRS:
            continue
        if child.is_dir():
            out.extend(_walk(child))
        elif child.suffix == ".ipynb" and child.is_file():
            out.append(child)
    return out
