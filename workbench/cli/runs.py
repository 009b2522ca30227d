"""`workbench runs`: the runs in the store with their final metrics."""
from __future__ import annotations

from pathlib import Path

from ..errors import WorkbenchError
from ..runs import list_runs, runs_root
from ..runs.store import iter_final_metrics


def add_parser(sub):
    p = sub.add_parser("runs", help="list runs with their final metrics")
    p.add_argument("--root", default=None, help="runs folder (default: $WORKBENCH_RUNS or ./runs)")
    p.set_defaults(func=run)


def _fmt(v):
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def run(args) -> int:
    if args.root is not None and not Path(args.root).is_dir():  # a typo must not read as "no runs yet"
        what = "is a file, not a folder" if Path(args.root).exists() else "does not exist"
        raise WorkbenchError(f"--root {args.root} {what}")
    rows = list(iter_final_metrics(list_runs(args.root)))
    if not rows:
        print(f"no runs under {args.root or runs_root()}")
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
