"""What share of a default `workbench train` run is evaluation.

Runs `workbench train` with every default (smollm2-135m-instruct, LoRA, 30 steps, batch 4,
an evaluation — eval loss, the method's probes, the run samples — every `eval_steps` steps on
`eval_rows` held-out rows, and for preference methods also before the first step) for each
method given, one fresh process each, and reads the run's own metrics.jsonl. Checkpoints are
moved out of the way (`save_steps` past the end) so they are not counted as evaluation.

Evaluation time is read from the records: the gaps that contain an evaluation (START → step
1, step N → N+1 for every evaluated step N, the last step → END) minus one median training
step each (the gaps between other consecutive steps). The share is evaluation ÷ the whole
process wall time (model loading included: what the user waits for) and ÷ the training loop
(START → END).

    python benchmarks/bench_eval_share.py --methods sft,dpo --out benchmarks/results/eval_share.md
    python benchmarks/bench_eval_share.py --methods sft -- --set eval_rows=32 --set eval_steps=10   # other settings
    python benchmarks/bench_eval_share.py --methods dpo --before b155fc4 --repeats 3   # against a commit

With `--before COMMIT` that commit runs too (a `git worktree`, imported through PYTHONPATH),
interleaved with this checkout, `--repeats` rounds, and the medians are reported: these
machines are noisy, so read the ratios. Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASETS = {"sft": "instructions", "dpo": "preferences", "kto": "feedback", "orpo": "preferences",
            "grpo": "arithmetic", "rloo": "arithmetic"}


def measure(method: str, threads: int, extra: list[str], code: Path | None = None) -> dict:
    """One default run of `method` in a fresh process (from the checkout at `code`, else this one)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "workbench.cli.main", "train", "--method", method,
               "--dataset", DATASETS.get(method, "preferences"), "--run-dir", str(run_dir),
               "--save-steps", "1000", *extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", **({"PYTHONPATH": str(code)} if code else {})}
        t0 = time.time()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=code)
        wall = time.time() - t0
        recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    events = {r["event"]: r["time"] for r in recs if r["kind"] == "event"}
    train = {r["step"]: r["time"] for r in recs if r["kind"] == "train" and "loss" in r}
    evals = sorted({r["step"] for r in recs if r["kind"] == "eval"})
    steps = sorted(train)
    plain = [train[s] - train[s - 1] for s in steps if s - 1 in train and s - 1 not in evals]
    step_s = statistics.median(plain)
    gaps = []
    for e in evals:
        before = events["start"] if e == 0 else train[e]
        after = train.get(e + 1, events["end"])
        gaps.append(after - before - (step_s if e + 1 in train else 0.0))
    loop = events["end"] - events["start"]
    return {"method": method, "wall_s": wall, "loop_s": loop, "steps": len(steps), "step_s": step_s,
            "eval_points": evals, "eval_s": sum(gaps), "eval_each_s": gaps,
            "share_of_wall": sum(gaps) / wall, "share_of_loop": sum(gaps) / loop}


def median_run(runs: list[dict]) -> dict:
    """The run with the median evaluation share, plus the spread of the shares."""
    ranked = sorted(runs, key=lambda r: r["share_of_wall"])
    return {**ranked[len(ranked) // 2], "shares": [r["share_of_wall"] for r in runs]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="sft,dpo")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    p.add_argument("--before", default=None, help="git commit to run too, interleaved (a worktree)")
    p.add_argument("--repeats", type=int, default=1, help="rounds; the median run is reported")
    p.add_argument("--out", default=None, help="markdown table; the raw figures go beside it as .json")
    p.add_argument("extra", nargs="*", help="more `workbench train` options, after --")
    args = p.parse_args()
    from workbench.threads import planned_threads

    threads = args.threads or planned_threads()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from worktree import REPO, checkout

    runs: dict[tuple[str, str], list[dict]] = {}
    with checkout(args.before) if args.before else contextlib.nullcontext(None) as old:
        codes = [("before", old), ("after", REPO)] if old else [("this checkout", None)]
        for rep in range(args.repeats):
            for method in args.methods.split(","):
                for label, code in codes:
                    runs.setdefault((method, label), []).append(measure(method, threads, args.extra, code))
                    print(rep, method, label, f"{runs[method, label][-1]['share_of_wall']:.1%}", flush=True)
    rows = {key: median_run(r) for key, r in runs.items()}
    lines = [f"# Evaluation's share of a default run ({threads} threads)", "",
             f"`python benchmarks/bench_eval_share.py --methods {args.methods}"
             + (f" --before {args.before}" if args.before else "") + f" --repeats {args.repeats}`"
             + (f" -- {' '.join(args.extra)}" if args.extra else "") + "; load average after: "
             f"{os.getloadavg()[0]:.1f}. Median run of {args.repeats} (by share); every share in the last column.",
             "", "| method | code | wall s | training loop s | s/step (median) | evaluations | eval s (each) | "
             "share of wall | share of loop | shares of wall |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (method, label), r in rows.items():
        each = ", ".join(f"{g:.1f}" for g in r["eval_each_s"])
        shares = ", ".join(f"{x:.0%}" for x in r["shares"])
        lines.append(f"| {method} | {label} | {r['wall_s']:.0f} | {r['loop_s']:.0f} | {r['step_s']:.2f} | "
                     f"{len(r['eval_points'])} | {r['eval_s']:.0f} ({each}) | {r['share_of_wall']:.0%} | "
                     f"{r['share_of_loop']:.0%} | {shares} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(
            json.dumps({f"{m} | {label}": r for (m, label), r in runs.items()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
