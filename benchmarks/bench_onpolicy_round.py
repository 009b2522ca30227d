"""One on-policy round, this checkout against an earlier commit: where a round's time goes.

`workbench train --method onpolicy-dpo --dataset arithmetic --max-steps 2 --set method.rounds=1`
on SmolLM2 with every other default (16 prompts × k=4 samples of ≤ 64 tokens, 16 held-out rows
answered greedily before and after the round), each run a fresh process, the two checkouts
interleaved over `--repeats` rounds, medians reported. Read from the run's own records: the
sampling time and tokens/s the loop logs, the step-0 held-out evaluation (start → first eval
record) and the whole loop (start → end).

    python benchmarks/bench_onpolicy_round.py --before 1025d3c [--repeats 2] [--out results.json]
Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CMD = ["train", "--method", "onpolicy-dpo", "--dataset", "arithmetic", "--peft", "lora", "--max-steps", "2",
       "--set", "method.rounds=1", "--quiet"]


def measure(code: Path, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(code)}
        subprocess.run([sys.executable, "-m", "workbench.cli.main", *CMD, "--run-dir", str(run)], env=env, cwd=code,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    start = next(r["time"] for r in recs if r.get("event") == "start")
    end = next(r["time"] for r in recs if r.get("event") == "end")
    first_eval = next(r["time"] for r in recs if r["kind"] == "eval")
    rnd = next(r for r in recs if r.get("event") == "round")
    return {"loop_s": end - start, "eval0_s": first_eval - start, "sample_s": rnd["sample_seconds"],
            "sample_tok_s": rnd["sample_tokens_per_s"], "sample_length_mean": rnd["length_mean"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="git commit to compare against (checked out in a worktree)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    from worktree import REPO, checkout

    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with checkout(args.before) as old:
        for rep in range(args.repeats):
            for label, code in (("before", old), ("after", REPO)):
                runs[label].append(measure(code, args.threads))
                print(rep, label, runs[label][-1], flush=True)
    med = {label: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for label, rows in runs.items()}
    print(f"| | before ({args.before}) | after | before ÷ after |\n|---|---|---|---|")
    for k, name in (("loop_s", "round loop, s"), ("sample_s", "sampling 64 completions, s"),
                    ("eval0_s", "held-out evaluation (16 greedy answers), s"),
                    ("sample_tok_s", "sampling tokens/s")):
        ratio = med["before"][k] / med["after"][k]
        print(f"| {name} | {med['before'][k]:.1f} | {med['after'][k]:.1f} | {ratio:.2f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"before": args.before, "runs": runs, "medians": med}, indent=1) + "\n")


if __name__ == "__main__":
    main()
