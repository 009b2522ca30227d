"""`workbench merge RUN RUN … --method M --out DIR`: combine finished runs (LoRA adapters
over one base, or full fine-tunes) into a new run directory that every probe reads."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "merge", help="merge runs (soups, task arithmetic, TIES, DARE, …) into a new run directory",
        description="Merge two or more finished runs over one base model. LoRA runs merge with PEFT's "
                    "add_weighted_adapter, full runs with PEFT's merge utilities. Everything is checked "
                    "before anything is written; the output is a run directory (config.json, final/, "
                    "summary.json) that shift, the probes, Compare and export read like any run.")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run directories to merge (two or more)")
    p.add_argument("--method", default=None,
                   help="linear, greedy_soup, task_arithmetic, ties, dare, magnitude_prune; LoRA only: svd, cat "
                        "(default linear; --list-methods for their knobs)")
    p.add_argument("--weights", default=None, metavar="W1,W2,…",
                   help="one weight per run (default: 1/n for soups, 1 each for task-vector methods)")
    p.add_argument("--density", type=float, default=None,
                   help="fraction of each task vector kept, in (0, 1] (ties, dare, magnitude_prune)")
    p.add_argument("--base", default=None,
                   help="base model the task vectors are taken against (default: the runs' own base)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other knob of the method, e.g. majority_sign_method=frequency, seed=1, svd_rank=8")
    p.add_argument("--out", default=None,
                   help="output run directory (new or empty; default runs/merge-<method>-<time>)")
    p.add_argument("--list-methods", action="store_true", help="list merge methods and their knobs, then exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import field_help
    from ..merging import list_merge_methods, merge
    from ._sets import parse_sets, sets_into_flags

    if args.list_methods:
        for spec in list_merge_methods():
            print(f"{spec.name:16} {spec.summary}")
            for name, default, help_text in field_help(spec.config_cls):
                print(f"{'':18}{name} = {default!r}: {help_text}")
        return 0
    knobs = parse_sets(args.set, "merge.")
    sets_into_flags(knobs, args, ("method", "weights", "density", "base", "out"))
    result = merge(args.runs, args.method or "linear", weights=args.weights, density=args.density, base=args.base,
                   out=args.out, **knobs)
    m = result.config["merge"]
    kept = f"; kept {', '.join(m['kept'])}" if m.get("kept") else ""
    weights = ", ".join(f"{w:g}" for w in m["weights"])
    print(f"merged {len(m['sources'])} {m['kind']} runs with {m['method']} (weights {weights}{kept}) "
          f"over {m['base']} → {result.run_dir}")
    return 0
