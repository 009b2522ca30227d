"""What the run store and the live plots cost per training step.

Every logged step becomes one MetricsRecord: appended to metrics.jsonl (the run store) and
handed to the listeners — in the app, `widgets.LiveCurves`, which redraws its figures from
all records at most every 0.3 s, in the training thread. This replays the records of a long
DPO run (a train record per step with TRL's rewards/* and logps/*, an eval record with the
preference probes every 10 steps) through a real `Run` with (a) the store alone and (b) the
store plus LiveCurves, and reports CPU time per step as the run grows, next to a measured
training step time, as the share of a step.

CPU time (time.process_time) rather than wall time, so a busy machine does not change the
figures much; `--step-s` is the quiet-machine step time it is compared with (default: SFT+LoRA
on smollm2-135m-instruct, batch 4, 1.9 s/step, measured in benchmarks/results/vs_trl.md).

    python benchmarks/bench_overhead.py --out benchmarks/results/overhead.md
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from workbench.runs.records import Kind, MetricsRecord
from workbench.runs.run import Run

TRAIN_KEYS = ("loss", "grad_norm", "learning_rate", "rewards/chosen", "rewards/rejected", "rewards/accuracies",
              "rewards/margins", "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected", "num_tokens",
              "tokens_per_s", "epoch")
EVAL_KEYS = ("eval_loss", "eval_rewards/accuracies", "eval_rewards/margins", "eval_ranking_accuracy",
             "eval_ref_ranking_accuracy", "eval_idealised_ranking_accuracy", "eval_alignment_gap", "eval_kl_to_ref",
             "eval_kl_to_ref_se", "eval_sample_length")


def replay(steps: int, listeners, marks: list[int]) -> dict[int, float]:
    """CPU seconds per step over the 100 steps before each mark."""
    rng = random.Random(0)
    out, window = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.create(Path(tmp) / "run", {"method": "dpo"}, listeners)
        with run:
            for step in range(1, steps + 1):
                t = time.process_time()
                run.emit(MetricsRecord(step, Kind.TRAIN, {k: rng.random() for k in TRAIN_KEYS}))
                if step % 10 == 0:
                    run.emit(MetricsRecord(step, Kind.EVAL, {k: rng.random() for k in EVAL_KEYS}))
                window.append(time.process_time() - t)
                if step in marks:
                    out[step] = sum(window[-100:]) / len(window[-100:])
            run.finish(steps=steps)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--step-s", type=float, default=1.9, help="training step time to compare with (seconds)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    marks = [m for m in (100, 300, 1000, 3000) if m <= args.steps]
    store = replay(args.steps, [], marks)
    from widgets.live_curves import LiveCurves

    curves = LiveCurves(live=True)
    live = replay(args.steps, [curves.add], marks)
    lines = [f"# Run store and live-plot overhead ({args.steps} steps replayed)", "",
             f"`python benchmarks/bench_overhead.py --steps {args.steps} --step-s {args.step_s}`; CPU time per "
             f"step, mean of the 100 steps before the mark; share of a {args.step_s} s training step.", "",
             "| steps so far | store only: ms/step | share | store + LiveCurves: ms/step | share |",
             "|---|---|---|---|---|"]
    for m in marks:
        lines.append(f"| {m} | {store[m] * 1e3:.2f} | {store[m] / args.step_s:.3%} | {live[m] * 1e3:.2f} | "
                     f"{live[m] / args.step_s:.3%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
