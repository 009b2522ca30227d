"""`workbench sweep SWEEP.yaml`: run a grid/list of parameter sets over a notebook template
in parallel, then write one HTML comparison report."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import WorkbenchError
from ._paths import check_output_dir


def add_parser(sub):
    p = sub.add_parser("sweep", help="execute a template notebook over a parameter grid; one HTML report")
    p.add_argument("sweep", help="sweep YAML (template, parameters, grid and/or list, workers)")
    p.add_argument("-o", "--output", help="sweep folder (default: runs/sweeps/<name>-<time>)")
    p.add_argument("-j", "--workers", type=int, default=None, help="parallel notebooks (overrides the file)")
    p.add_argument("--dry-run", action="store_true", help="list the configurations and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..sweeps import label_of, load_sweep, run_sweep, sweep_report

    if args.workers is not None and args.workers < 1:
        raise WorkbenchError(f"-j/--workers must be at least 1, got {args.workers}")
    spec = load_sweep(args.sweep)
    if args.dry_run:
        for i, cfg in enumerate(spec.configs):
            print(f"{i:3d}  {label_of({**spec.parameters, **cfg})}")
        return 0
    out = Path(args.output) if args.output else (
        Path("runs") / "sweeps" / f"{Path(args.sweep).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_output_dir(out, "-o/--output")
    results = run_sweep(spec, out, workers=args.workers)
    report = sweep_report(spec, results, out / "report.html")
    failed = [r for r in results if r.error]
    print(f"{len(results) - len(failed)}/{len(results)} configurations succeeded")
    for r in failed:
        print(f"  failed {r.label}: {r.error}  ({r.notebook})")
    print(f"report: {report}")
    return 1 if failed else 0
