"""`workbench runs`: the runs in the store with their final metrics."""
from __future__ import annotations

from pathlib import Path

from ..errors import WorkbenchError
from ..runs import list_runs, runs_root
from ..runs.store import CONFIG, iter_final_metrics, open_run_or_error


def add_parser(sub):
    p = sub.add_parser("runs", help="list runs with their final metrics")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="run directories, or folders of runs (default: the runs folder)")
    p.add_argument("--root", default=None, help="runs folder (default: $WORKBENCH_RUNS or ./runs)")
    p.set_defaults(func=run)


def _fmt(v):
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def _runs_in(path: str, flag: str) -> list:
    """The runs at `path`: the run itself when it is a run directory, else those in it. A typo
    must not read as "no runs yet"."""
    p = Path(path)
    if not p.is_dir():
        raise WorkbenchError(f"{flag}{path} {'is a file, not a folder' if p.exists() else 'does not exist'}")
    return [open_run_or_error(p)] if (p / CONFIG).is_file() else list_runs(p)


def run(args) -> int:
    if args.paths and args.root is not None:
        raise WorkbenchError("give run folders as PATH arguments or --root, not both")
    if args.paths:
        runs = [r for path in args.paths for r in _runs_in(path, "")]
    else:
        runs = list_runs() if args.root is None else _runs_in(args.root, "--root ")
    rows = list(iter_final_metrics(runs))
    if not rows:
        print(f"no runs under {', '.join(args.paths) or args.root or runs_root()}")
        return 0
    cols = ["run", "status", "method", "peft", "model", "steps", "train_loss", "eval_loss"]
    widths = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(widths[c]) for c in cols))
    for r in rows:  # runs whose config or summary could not be read: say why, list the rest anyway
        if r.get("error"):
            print(f"unreadable: {r['error']}")
    return 0
