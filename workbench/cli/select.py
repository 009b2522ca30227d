"""`workbench select`: choose rows of a dataset with a selection strategy and write them
(with a `_score` column) as JSON lines."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import WorkbenchError
from ._paths import check_output_file, os_error_text
from ._sets import parse_sets, sets_into_flags


def add_parser(sub):
    p = sub.add_parser("select", help="choose training rows with a data-selection strategy")
    p.add_argument("--dataset", help="built-in dataset name, local file or hub id")
    p.add_argument("--strategy", help="selection strategy (see --list)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--k", type=int, help="rows to choose")
    budget.add_argument("--fraction", type=float, help="fraction of the pool to choose (0-1]")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KNOB=VALUE",
                   help="strategy knob, e.g. --set scorer=tiny-llama (repeatable; values parsed as YAML)")
    p.add_argument("--target", help="target set for dsir/zipfit: dataset name or file")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--out", help="output .jsonl file for the chosen rows")
    p.add_argument("--list", action="store_true", help="list strategies and their knobs, then exit")
    p.set_defaults(func=run)


def _list() -> int:
    from ..config import field_help
    from ..selection import list_strategies

    for spec in list_strategies():
        print(f"{spec.name:11} {spec.summary}")
        for name, default, help_ in field_help(spec.knobs):
            print(f"    {name}={default!r}: {help_}")
    return 0


def _jsonable(v):
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def _write_rows(out: Path, sel, rows) -> None:
    """Temp file + rename: no half-written output, and no temp file left on failure."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    except OSError as e:
        raise WorkbenchError(f"--out {out}: cannot write there ({os_error_text(e)})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for i, row in zip(sel.indices, rows):
                row["_score"] = None if sel.scores is None else _jsonable(float(sel.scores[i]))
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, out)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise WorkbenchError(f"--out {out}: writing failed ({os_error_text(e)})") from None
        raise


def run(args) -> int:
    if args.list:
        return _list()
    knobs = parse_sets(args.overrides)
    sets_into_flags(knobs, args, ("k", "fraction", "seed", "target"))
    for flag in ("dataset", "strategy", "out"):
        if not getattr(args, flag):
            raise WorkbenchError(f"--{flag} is required (or use --list)")
    if args.k is None and args.fraction is None:
        raise WorkbenchError("give --k N or --fraction F")
    out = check_output_file(args.out, "--out", (args.dataset,))  # before any work: a bad --out costs nothing
    from ..selection import select
    from ..selection.text import load_source

    if args.target:
        knobs["target"] = args.target
    dataset = load_source(args.dataset)
    sel = select(dataset, args.strategy, k=args.k, fraction=args.fraction,
                 seed=0 if args.seed is None else args.seed, **knobs)
    rows = sel.subset(dataset).to_list()
    _write_rows(out, sel, rows)
    print(f"{sel.summary()} -> {out}")
    return 0
