"""Which notebooks are course units, and where the course's source notebooks live."""
from __future__ import annotations

from pathlib import Path

from ..errors import WorkbenchError

# notebooks/course/ of a source checkout (the solution notebooks, with hidden tests).
SOURCE_DIR = Path(__file__).resolve().parents[2] / "notebooks" / "course"
META_KEY = "course"   # metadata.workbench.course = {"unit": N, "title": "..."}


def course_meta(nb) -> dict | None:
    meta = (nb.metadata.get("workbench") or {}).get(META_KEY)
    return dict(meta) if isinstance(meta, dict) and "unit" in meta else None


def read_course_notebook(path: str | Path):
    """(path, notebook node) of a course notebook, or WorkbenchError in one line: missing
    file, not a notebook, or a notebook that is not a course unit."""
    import nbformat

    from ..notebooks import _existing

    path = _existing(path)
    nb = nbformat.read(str(path), as_version=4)
    if course_meta(nb) is None:
        raise WorkbenchError(f"{path.name}: not a course notebook (no metadata.workbench.course; "
                             f"course units live in notebooks/course/)")
    return path, nb


def course_notebooks(source: str | Path | None = None) -> list[Path]:
    """The course units under `source` (default notebooks/course/), sorted by name."""
    folder = Path(source) if source is not None else SOURCE_DIR
    if not folder.is_dir():
        raise WorkbenchError(f"course folder {folder} does not exist")
    import nbformat

    found = []
    for p in sorted(folder.glob("*.ipynb")):
        try:
            nb = nbformat.read(str(p), as_version=4)
        except Exception:
            continue
        if course_meta(nb) is not None:
            found.append(p)
    if not found:
        raise WorkbenchError(f"no course notebooks (metadata.workbench.course) in {folder}")
    return found


def graded_cells(nb) -> list[tuple[int, dict]]:
    """(index, nbgrader metadata) of every autograded cell, in order."""
    from nbgrader.utils import is_grade

    return [(i, dict(c.metadata["nbgrader"])) for i, c in enumerate(nb.cells) if is_grade(c)]


def source_for(path: Path, nb, source: str | Path | None = None) -> Path | None:
    """The solution notebook a student copy was released from: the course notebook of the
    same unit in the course folder, preferring the same file name (submissions are often
    renamed, e.g. alice-03.ipynb)."""
    import nbformat

    folder = Path(source) if source is not None else SOURCE_DIR
    unit = course_meta(nb).get("unit")
    same_name = folder / path.name
    candidates = ([same_name] if same_name.is_file() else []) + sorted(folder.glob("*.ipynb"))
    for candidate in candidates:
        try:
            ref_meta = course_meta(nbformat.read(str(candidate), as_version=4))
        except Exception:
            continue
        if ref_meta is not None and ref_meta.get("unit") == unit:
            return candidate
    return None
