"""PEFT comparison and Anchored-SFT-vs-DFT drift on the real small model.

Trains LoRA, DoRA, IA3, prompt tuning and full fine-tuning with plain SFT on the built-in
`instructions` data (same rows, steps, batch and length), then DFT and Anchored SFT with
the KL to the starting model logged every step, and writes a markdown table.

    .venv/bin/python benchmarks/compare_peft.py [--steps 30] [--out benchmarks/results/peft_comparison.md]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from workbench import TrainConfig, train

# Learning rates per type: each family has its own usual range (prompt tuning and IA3
# vectors need far larger steps than full fine-tuning).
PEFT_RUNS = [("lora", 2e-4), ("dora", 2e-4), ("ia3", 3e-3), ("prompt-tuning", 3e-2), ("full", 2e-5)]
DRIFT_LR = 1e-3  # LoRA for the DFT / Anchored SFT pair: high enough that drift shows in a short run


def run(name: str, tmp: Path, steps: int, max_length: int, eval_rows: int, **kw):
    cfg = TrainConfig(model="smollm2-135m-instruct", dataset="instructions", max_steps=steps,
                      batch_size=4, max_length=max_length, eval_rows=eval_rows, eval_steps=steps, save_steps=10_000,
                      sample_prompts=0, logging_steps=1, seed=0, run_dir=str(tmp / name), **kw)
    t = time.time()
    result = train(cfg)
    print(f"{name}: {result.status} in {time.time() - t:.0f}s  {json.dumps(result.summary)}", flush=True)
    return result


def train_series(result, key):
    return [r.get(key) for r in result.records if r.kind == "train" and r.get(key) is not None]


def fmt(x, spec=".4f"):
    return "—" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--eval-rows", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1 is fastest on a shared 2-core machine)")
    ap.add_argument("--out", default="benchmarks/results/peft_comparison.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="peft-compare-"))

    # One step at learning rate 0 leaves the model as it was: its eval loss is the baseline.
    base = run("base", tmp, 1, args.max_length, args.eval_rows, method="sft", peft="full", learning_rate=0.0)
    base_eval = base.summary["eval_loss"]

    rows = []
    for peft, lr in PEFT_RUNS:
        r = run(f"sft-{peft}", tmp, args.steps, args.max_length, args.eval_rows,
                method="sft", peft=peft, learning_rate=lr)
        s = r.summary
        rows.append((peft, lr, s))

    drift = {}
    for method, margs in (("dft", {"track_kl": True}), ("anchored-sft", {"kl_coef": 0.1})):
        r = run(method, tmp, args.steps, args.max_length, args.eval_rows,
                method=method, peft="lora", learning_rate=DRIFT_LR, method_args=margs)
        drift[method] = (r.summary, train_series(r, "kl_to_ref"), train_series(r, "nll"))

    lines = [
        "# PEFT comparison and Anchored SFT drift",
        "",
        f"`smollm2-135m-instruct`, built-in `instructions` (train split; {args.eval_rows} eval rows), "
        f"{args.steps} steps, batch 4, max_length {args.max_length}, linear schedule, seed 0; "
        f"CPU ({platform.machine()}, "
        f"{torch.get_num_threads()} threads, 2 cores shared with other jobs, so tokens/s are rough). "
        "Produced by `benchmarks/compare_peft.py`.",
        "",
        "## Plain SFT under each PEFT type",
        "",
        "| peft | lr | first train loss | final train loss | final eval loss "
        "| trainable params | share | tokens/s | runtime s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for peft, lr, s in rows:
        lines.append(f"| {peft} | {lr:g} | {fmt(s['first_train_loss'])} | {fmt(s['train_loss'])} | "
                     f"{fmt(s['eval_loss'])} | {s['trainable_params']:,} | {s['trainable_share']:.4%} | "
                     f"{fmt(s['tokens_per_s'], '.0f')} | {fmt(s['runtime_s'], '.0f')} |")
    lines += [
        "",
        f"Eval loss of the untrained model on the same rows: {fmt(base_eval)}.",
        "Train loss is one batch's loss (noisy); eval loss is on the same held-out rows for every run.",
        "",
        f"## DFT vs Anchored SFT: KL(π_ref‖π_θ) to the starting model (LoRA, lr {DRIFT_LR:g})",
        "",
        "| method | KL at step 1 | KL mean of last 3 steps | KL max | NLL first | NLL mean of last 3 "
        "| final eval loss (method's own loss) |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, (s, kl, nll) in drift.items():
        lines.append(f"| {method} | {kl[0]:.5f} | {sum(kl[-3:]) / len(kl[-3:]):.5f} | {max(kl):.5f} | "
                     f"{nll[0]:.4f} | {sum(nll[-3:]) / len(nll[-3:]):.4f} | {fmt(s['eval_loss'])} |")
    lines += ["", "KL per step (train batches):", ""]
    for method, (_, kl, _) in drift.items():
        lines.append(f"- {method}: " + ", ".join(f"{x:.4f}" for x in kl))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
