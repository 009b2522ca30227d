"""`workbench course build`: the student release of the course, made by nbgrader's own
preprocessors in the order its `generate_assignment` runs them (without the database
step, so nothing is written to ~/.jupyter or a gradebook): lock cells, replace the code
between `### BEGIN SOLUTION` / `### END SOLUTION` with a stub, clear outputs, validate
the nbgrader metadata, record checksums, drop `### BEGIN HIDDEN TESTS` … regions, and
record the checksums again."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import WorkbenchError
from .notebooks import course_notebooks, read_course_notebook

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
INJECTED_TAG = "injected-parameters"   # papermill's tag for the cell it adds
INJECTED_NOTE = ("# The tiny settings (the `ci` profile) the stored outputs were made with, which nbval reruns.\n"
                 "# Delete this cell to run with the defaults above; the student release does not have it.\n")


def release_notebook(nb):
    """The student version of one solution notebook node (a new node; `nb` is untouched)."""
    import copy

    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearHiddenTests,
        ClearMarkScheme,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    nb = copy.deepcopy(nb)
    resources: dict = {}
    steps = [LockCells(), ClearSolutions(code_stub={"python": CODE_STUB}), ClearOutput(), CheckCellMetadata(),
             ComputeChecksums(), ClearHiddenTests(), ClearMarkScheme(), ComputeChecksums(), CheckCellMetadata()]
    for step in steps:
        nb, resources = step.preprocess(nb, resources)
    # The stored reference run's injected tiny parameters are CI's, not the student's: the release
    # runs with the parameters cell's own defaults.
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in (c.metadata.get("tags") or [])]
    _drop_run_metadata(nb)
    return nb


def _drop_run_metadata(nb) -> None:
    for cell in nb.cells:  # executed-copy metadata has no place in a committed or released notebook
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nb.metadata.pop("papermill", None)


def refresh_outputs(path: str | Path, profile: str = "ci", timeout: float | None = 1800,
                    threads: int | None = 1) -> Path:
    """Re-execute one solution notebook with a parameter profile from its metadata (papermill's
    way: an `injected-parameters` cell after the `parameters` cell) and store the outputs in
    the notebook itself, injected cell included. These stored outputs are what nbval compares
    against (`pytest --nbval notebooks/course/` runs the notebook as stored, so with the same
    tiny parameters); `release_notebook` drops the injected cell so students get the defaults.
    Raises WorkbenchError if any cell fails (a reference run must be clean)."""
    import nbformat

    from ..checking.profiles import notebook_profiles
    from .grade import execute_for_grading

    path, nb = read_course_notebook(path)
    profiles = notebook_profiles(nb)
    if profile not in profiles:
        raise WorkbenchError(f"{path.name}: no profile {profile!r} in its metadata")
    nb = execute_for_grading(nb, path.parent, profiles[profile], timeout, threads=threads)
    for i, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            raise WorkbenchError(f"{path.name}: cell {i} raised {errors[0].get('ename')}: {errors[0].get('evalue')}")
    for cell in nb.cells:
        if INJECTED_TAG in (cell.metadata.get("tags") or []) and not cell.source.startswith(INJECTED_NOTE):
            cell.source = INJECTED_NOTE + cell.source
    _drop_run_metadata(nb)
    nbformat.write(nb, str(path))
    return path


def build_release(out: str | Path, source: str | Path | None = None,
                  notebooks: list[str | Path] | None = None, force: bool = False) -> list[Path]:
    """Write the student release of every course unit (or of `notebooks`) to `out`. A notebook
    already in `out` that differs from its release (a student's work, an older release) is
    replaced only with `force`; an identical one is rewritten (building twice is harmless)."""
    import nbformat

    from ..notebooks import _write_atomic

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"--out {out} is a file")
    paths = [Path(p) for p in notebooks] if notebooks else course_notebooks(source)
    loaded = [read_course_notebook(p) for p in paths]  # every input checked before writing
    texts = {out / path.name: nbformat.writes(release_notebook(nb)) for path, nb in loaded}
    changed = [t.name for t, text in texts.items() if t.exists() and t.read_text(errors="replace") != text]
    if changed and not force:
        raise WorkbenchError(f"--out {out} already holds {', '.join(changed)}, different from this release "
                             f"(a student's work?); pick another folder, or pass --force to replace them")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkbenchError(f"cannot create {out} ({e.strerror or e})") from None
    written = []
    for target, text in texts.items():
        _write_atomic(target, text)
        written.append(target)
    data = Path(paths[0]).parent / "data"
    if data.is_dir():  # files the units read, if any
        shutil.copytree(data, out / "data", dirs_exist_ok=True)
    return written
