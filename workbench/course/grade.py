"""`workbench course check`: grade one submitted course notebook the way nbgrader's
autograde does, without its database.

1. The autograded test cells are put back from the solution notebook the student copy
   was released from (same file name in notebooks/course/, same unit): hidden tests come
   back and edited tests are undone, as autograde's "overwrite cells" step does.
2. The notebook is executed top to bottom with errors allowed (a crashing stub costs its
   own points, never the grading), optionally with a parameter profile from its metadata.
3. Each test cell is scored with nbgrader's `determine_grade`: full points unless its
   output holds an error (or stderr), in which case 0.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from .notebooks import course_meta, graded_cells, read_course_notebook, source_for


@dataclass
class ExerciseScore:
    grade_id: str
    points: float
    max_points: float
    message: str = ""          # the check's verdict line (✓ … or the first line of the failure)

    @property
    def passed(self) -> bool:
        return self.points >= self.max_points


@dataclass
class Grade:
    notebook: Path
    unit: Any
    scores: list[ExerciseScore]
    executed: bool
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    graded_notebook: Path | None = None

    @property
    def total(self) -> float:
        return sum(s.points for s in self.scores)

    @property
    def max_total(self) -> float:
        return sum(s.max_points for s in self.scores)

    def table(self) -> str:
        width = max([len(s.grade_id) for s in self.scores] + [8])
        lines = [f"{'exercise':{width}}  points  result"]
        for s in self.scores:
            lines.append(f"{s.grade_id:{width}}  {_num(s.points):>2}/{_num(s.max_points):<3}  "
                         f"{'passed' if s.passed else 'failed'}"
                         + (f": {s.message}" if s.message and not s.passed else ""))
        pct = 100 * self.total / self.max_total if self.max_total else 0.0
        lines.append(f"{'total':{width}}  {_num(self.total):>2}/{_num(self.max_total):<3}  ({pct:.0f}%)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"notebook": str(self.notebook), "unit": self.unit, "total": self.total,
                "max_total": self.max_total, "executed": self.executed, "seconds": self.seconds,
                "notes": self.notes, "exercises": [s.__dict__ for s in self.scores]}


def _num(x: float) -> str:
    return f"{x:g}"


def restore_tests(nb, reference) -> list[str]:
    """Overwrite `nb`'s autograded cells with the reference's (by grade_id); returns the
    grade_ids the submission is missing (deleted cells, which score 0)."""
    ref = {meta["grade_id"]: reference.cells[i] for i, meta in graded_cells(reference)}
    have = set()
    for cell in nb.cells:
        gid = (cell.metadata.get("nbgrader") or {}).get("grade_id")
        if gid in ref:
            have.add(gid)
            cell.source = ref[gid].source
            cell.metadata["nbgrader"] = dict(ref[gid].metadata["nbgrader"])
    return [gid for gid in ref if gid not in have]


def execute_for_grading(nb, cwd: Path, parameters: dict | None = None, timeout: float | None = None,
                        kernel: str = "python3", threads: int | None = None):
    """Run every cell with errors allowed, papermill's way of injecting parameters."""
    from nbclient import NotebookClient
    from papermill.parameterize import parameterize_notebook

    from ..notebooks import QUIET_KERNEL_ARGS, _thread_env

    if parameters:
        for cell in nb.cells:  # papermill reads every cell's tags
            cell.metadata.setdefault("tags", [])
        nb.metadata.setdefault("papermill", {})
        nb = parameterize_notebook(nb, parameters, report_mode=False)
    os.environ["WORKBENCH_HEADLESS"] = "1"
    os.environ.setdefault("TQDM_DISABLE", "1")
    client = NotebookClient(nb, timeout=int(timeout) if timeout else None, kernel_name=kernel,
                            allow_errors=True, resources={"metadata": {"path": str(cwd)}},
                            extra_arguments=list(QUIET_KERNEL_ARGS))
    with _thread_env(threads):  # the kernel's OMP/MKL thread count (None: inherit the environment)
        client.execute()
    return nb


def grade_notebook(notebook: str | Path, *, execute: bool = True, profile: str | None = None,
                   source: str | Path | None = None, timeout: float | None = 1800,
                   out: str | Path | None = None, workdir: str | Path | None = None,
                   threads: int | None = None) -> Grade:
    """Grade one course notebook. `execute=False` scores the outputs it already holds (for
    notebooks executed by a trusted run, e.g. the solution notebooks in CI); a student's
    submission is always executed. `profile` names a parameter profile in the notebook's
    metadata (e.g. "ci" for tiny settings). `threads` sets the kernel's OMP/MKL thread count
    (None: inherit). Raises WorkbenchError on bad input."""
    import nbformat
    from nbgrader.utils import determine_grade

    path, nb = read_course_notebook(notebook)
    notes: list[str] = []
    missing: list[str] = []
    parameters = None
    if profile is not None:
        from ..checking.profiles import notebook_profiles

        profiles = notebook_profiles(nb)
        if profile not in profiles:
            raise WorkbenchError(f"{path.name}: no profile {profile!r} in its metadata "
                                 f"(has: {', '.join(profiles) or 'none'})")
        parameters = profiles[profile]
    ref_path = source_for(path, nb, source)
    if execute:
        if ref_path is not None and ref_path.resolve() != path.resolve():
            missing = restore_tests(nb, nbformat.read(str(ref_path), as_version=4))
            if missing:
                notes.append(f"test cells missing from the submission (0 points): {', '.join(missing)}")
        elif ref_path is None:
            notes.append("no solution notebook found for this unit: graded with the tests it holds "
                         "(hidden tests not restored)")
    if not graded_cells(nb):
        raise WorkbenchError(f"{path.name}: no autograded cells (nbgrader metadata) to grade")
    start = time.perf_counter()
    if execute:
        cwd = Path(workdir) if workdir else path.parent
        nb = execute_for_grading(nb, cwd, parameters, timeout, threads=threads)
    scores = []
    for _, meta in graded_cells(nb):
        cell = next(c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("grade_id") == meta["grade_id"])
        if cell.get("execution_count") is None and not cell.get("outputs"):
            scores.append(ExerciseScore(meta["grade_id"], 0.0, float(meta["points"]), "not run"))
            continue
        points, max_points = determine_grade(cell)
        scores.append(ExerciseScore(meta["grade_id"], float(points or 0.0), float(max_points), _verdict(cell)))
    if missing:
        ref = nbformat.read(str(ref_path), as_version=4)
        for gid in missing:
            meta = dict(next(m for _, m in graded_cells(ref) if m["grade_id"] == gid))
            scores.append(ExerciseScore(gid, 0.0, float(meta["points"]), "test cell deleted"))
    graded_path = None
    if out is not None:
        graded_path = Path(out)
        graded_path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(graded_path))
    return Grade(path, course_meta(nb)["unit"], scores, execute, time.perf_counter() - start, notes, graded_path)


def _verdict(cell) -> str:
    """The check's own words: its ✓ line, or the first line of the failure."""
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            lines = [ln for ln in (o.get("traceback") or []) if ln.strip()]
            from ..notebooks import _plain_lines

            plain = _plain_lines(lines)
            first = next((ln for ln in plain if ln.startswith("✗")), None)
            return (first[2:] if first else f"{o.get('ename')}: {o.get('evalue')}").strip()[:200]
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream" and o.get("name") == "stdout":
            return o.get("text", "").strip().splitlines()[-1][:200] if o.get("text", "").strip() else ""
    return ""
