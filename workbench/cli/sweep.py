"""`workbench sweep SWEEP.yaml`: run a grid/list of parameter sets (or an Optuna search) over a
notebook template, on this machine or a Dask cluster, then write one HTML comparison report."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import WorkbenchError
from ._paths import check_output_dir


def add_parser(sub):
    p = sub.add_parser("sweep", help="execute a template notebook over a parameter grid or search; one HTML report")
    p.add_argument("sweep", help="sweep YAML (template, parameters, grid and/or list or search, workers, engine)")
    p.add_argument("-o", "--output", help="sweep folder (default: runs/sweeps/<name>-<time>)")
    p.add_argument("-j", "--workers", type=int, default=None, help="parallel notebooks (overrides the file)")
    p.add_argument("--engine", default=None, metavar="ENGINE",
                   help="local (processes on this machine, default) or dask (overrides the file's engine:)")
    p.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: start a local cluster)")
    p.add_argument("--tracker", default=None, metavar="NAME",
                   help="mirror every configuration's run to trackio, tensorboard or mlflow (sets the template's "
                        "tracker parameter; trackio's files go to <sweep folder>/trackio)")
    p.add_argument("--dry-run", action="store_true", help="list the configurations and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..sweeps import label_of, load_sweep, run_sweep, sweep_report
    from ..sweeps.engines import check_engine

    if args.workers is not None and args.workers < 1:
        raise WorkbenchError(f"-j/--workers must be at least 1, got {args.workers}")
    if args.engine is not None:
        check_engine(args.engine)
    spec = load_sweep(args.sweep)
    if args.tracker is not None:
        from ..sweeps import check_trackers

        check_trackers([{"tracker": args.tracker}], "--tracker")
        spec.parameters["tracker"] = args.tracker
    engine = args.engine or spec.engine
    if (args.address or spec.address) and engine != "dask":
        raise WorkbenchError("--address needs --engine dask (the local engine runs on this machine)")
    if args.dry_run:
        if spec.search is not None:
            s = spec.search
            print(f"search: {s.n_trials} trials, {s.direction} {s.metric}, space {label_of(s.space)}")
        for i, cfg in enumerate(spec.configs):
            print(f"{i:3d}  {label_of({**spec.parameters, **cfg})}")
        return 0
    out = Path(args.output) if args.output else (
        Path("runs") / "sweeps" / f"{Path(args.sweep).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_output_dir(out, "-o/--output")
    results = run_sweep(spec, out, workers=args.workers, engine=engine, address=args.address)
    report = sweep_report(spec, results, out / "report.html")
    failed = [r for r in results if r.error]
    pruned = [r for r in results if r.status == "pruned"]
    what = "trials" if spec.search is not None else "configurations"
    print(f"{len(results) - len(failed)}/{len(results)} {what} succeeded"
          + (f" ({len(pruned)} pruned)" if pruned else ""))
    for r in failed:
        print(f"  failed {r.label}: {r.error}  ({r.notebook})")
    if spec.search is not None and spec.search.study is not None:
        from optuna.trial import TrialState

        if any(t.state is TrialState.COMPLETE for t in spec.search.study.get_trials(deepcopy=False)):
            best = spec.search.study.best_trial
            print(f"best: trial {best.number} {spec.search.metric}={best.value:.6g} {label_of(best.params)}")
    print(f"report: {report}")
    return 1 if failed else 0
