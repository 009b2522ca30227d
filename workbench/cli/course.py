"""`workbench course build --out DIR` writes the student release of the graded course
(notebooks/course/, solutions and hidden tests stripped by nbgrader's preprocessors);
`workbench course check NOTEBOOK` grades one submitted unit and prints a score per
exercise and the total. Exit 0 when it graded (whatever the score), 2 on bad input.
See docs/course.md."""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("course", help="graded course notebooks: build the student release, grade a submission",
                       description=__doc__.split("\n\n")[0].replace("`", ""))
    csub = p.add_subparsers(dest="course_command", required=True, parser_class=type(p))
    b = csub.add_parser("build", help="write the student release (solutions and hidden tests stripped)")
    b.add_argument("--out", required=True, metavar="DIR", help="folder for the student notebooks")
    b.add_argument("--source", metavar="DIR", help="course folder (default: notebooks/course/)")
    b.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="only these units (default: all)")
    b.add_argument("--force", action="store_true",
                   help="replace notebooks in --out that differ from this release (default: refuse)")
    b.set_defaults(func=run_build)
    c = csub.add_parser("check", help="grade one submitted course notebook: score per exercise and total")
    c.add_argument("notebook", metavar="STUDENT_NOTEBOOK")
    c.add_argument("--profile", default=None,
                   help="run with a parameter profile from the notebook's metadata (e.g. ci: tiny settings)")
    c.add_argument("--source", metavar="DIR",
                   help="folder with the solution notebooks whose tests are restored (default: notebooks/course/)")
    c.add_argument("--no-execute", action="store_true",
                   help="score the outputs already in the notebook instead of running it (trusted runs only)")
    c.add_argument("--timeout", type=float, default=1800, metavar="S", help="seconds allowed per cell")
    c.add_argument("--threads", type=int, default=None, metavar="N",
                   help="OMP/MKL threads of the grading kernel (default: inherit the environment)")
    c.add_argument("--out", metavar="GRADED.ipynb", help="also write the executed, graded notebook here")
    c.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
    c.set_defaults(func=run_check)


def run_build(args) -> int:
    from ..course import build_release

    written = build_release(args.out, source=args.source, notebooks=args.notebooks or None, force=args.force)
    for path in written:
        print(f"released {path}")
    print(f"{len(written)} notebooks in {args.out}: hand out this folder; grade with `workbench course check`")
    return 0


def run_check(args) -> int:
    from ..course import grade_notebook
    from ..errors import WorkbenchError
    from ._paths import check_output_file

    if args.timeout is not None and args.timeout <= 0:
        raise WorkbenchError(f"--timeout must be positive, got {args.timeout:g}")
    if args.threads is not None and args.threads < 1:
        raise WorkbenchError(f"--threads must be at least 1, got {args.threads}")
    for flag, value in (("--out", args.out), ("--json", args.json)):  # the submission is evidence: never replaced
        if value:
            check_output_file(value, flag, inputs=(args.notebook,))
    grade = grade_notebook(args.notebook, execute=not args.no_execute, profile=args.profile,
                           source=args.source, timeout=args.timeout, out=args.out, threads=args.threads)
    print(f"{grade.notebook.name} (unit {grade.unit})" + ("" if grade.executed else " — stored outputs, not re-run"))
    for note in grade.notes:
        print(f"note: {note}")
    print(grade.table())
    if args.json:
        Path(args.json).write_text(json.dumps(grade.to_json(), indent=1, default=str))
    return 0
