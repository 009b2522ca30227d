"""What `torch.compile` would give a LoRA training step on this machine, at its best.

    OMP_NUM_THREADS=2 python benchmarks/bench_compile_step.py --steps 8 --json benchmarks/results/compile_step.json

One process, one fixed batch (rows × tokens of real instruction text, padded to one length so
that the compiled graph never recompiles: the most favourable case for the compiler), the same
LoRA model (r=8, α=16, every linear layer, as bench_vs_trl.py) trained eager and compiled,
forward + backward + AdamW, alternating eager and compiled steps after the compile. Reports the
compile time, s/step of each, the ratio, the loss of each step (they should agree to float
noise) and the fraction of the measured matmul peak each reaches (4N FLOPs/token, N = the
non-embedding parameters, as in vs_trl.md).

This is the ceiling for a compiled step: real batches vary in length, which recompiles or needs
dynamic shapes (slower kernels) or padding to buckets (wasted tokens). So a third model trains
beside them on what `workbench train` hands the model: the same rows padded only to the longest
of them ("eager, longest"); tokens/s counts the real (unpadded) tokens for all three.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8, help="timed steps of each (after one warm-up each)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--mode", default=None, help="torch.compile mode (default: torch's default)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from bench_vs_trl import flops_per_token, matmul_peak
    from peft import LoraConfig, get_peft_model

    from workbench.data import load
    from workbench.models import load_model
    from workbench.models.device import use_bf16

    threads = torch.get_num_threads()
    bf16 = use_bf16("cpu", args.precision)
    base, tok = load_model(args.model)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    models = {"eager": get_peft_model(copy.deepcopy(base), lora), "longest": get_peft_model(copy.deepcopy(base), lora),
              "compiled": get_peft_model(base, lora)}
    for name in ("longest", "compiled"):
        models[name].load_state_dict(models["eager"].state_dict())  # same LoRA initialisation

    rows = load("instructions", format="prompt_completion", max_rows=args.rows)
    text = [tok.apply_chat_template(list(r["prompt"]) + list(r["completion"]), tokenize=False) for r in rows]
    batches = {}
    for name, padding in (("eager", "max_length"), ("longest", "longest"), ("compiled", "max_length")):
        b = tok(text, padding=padding, truncation=True, max_length=args.tokens, return_tensors="pt")
        batches[name] = {**b, "labels": b["input_ids"].masked_fill(b["attention_mask"] == 0, -100)}

    opts = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            for name, m in models.items()}
    fwd = {**models, "compiled": torch.compile(models["compiled"], mode=args.mode)}

    def step(name: str) -> tuple[float, float]:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = fwd[name](**batches[name]).loss
        loss.backward()
        opts[name].step()
        opts[name].zero_grad(set_to_none=True)
        return time.perf_counter() - t, float(loss.detach())

    t0 = time.perf_counter()
    first_compiled = step("compiled")
    compile_s = time.perf_counter() - t0
    times = {name: [] for name in models}
    losses = {name: [step(name)[1]] for name in ("eager", "longest")} | {"compiled": [first_compiled[1]]}
    for _ in range(args.steps):
        for name in models:
            s, loss = step(name)
            times[name].append(s)
            losses[name].append(loss)

    peak = matmul_peak(threads)["bf16" if bf16 else "fp32"]
    fpt = flops_per_token(args.model, "lora")
    tokens = int(batches["eager"]["attention_mask"].sum())
    longest = batches["longest"]["input_ids"].shape[1]
    report = {"model": args.model, "threads": threads, "precision": "bf16" if bf16 else "fp32",
              "rows": args.rows, "tokens_per_row": args.tokens, "real_tokens": tokens, "longest_row": longest,
              "mode": args.mode,
              "torch": torch.__version__, "compile_s": compile_s, "step_s": times, "loss": losses,
              "peak_flops": peak, "flops_per_token": fpt}
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{report['precision']}, {threads} threads, {args.rows} rows, {tokens} real tokens padded to {args.tokens} "
          f"per row (eager, compiled) or to the longest, {longest} (longest); "
          f"first compiled step (compiling) {compile_s:.1f} s")
    for name in times:
        padded = args.rows * (longest if name == "longest" else args.tokens)
        print(f"  {name:9s} {med[name]:.3f} s/step  {tokens / med[name]:.0f} real tokens/s  "
              f"{100 * padded / med[name] * fpt / peak:.1f}% of the measured {report['precision']} peak "
              f"({peak / 1e9:.0f} GFLOP/s) counting padding")
    diff = {n: max(abs(a - b) for a, b in zip(losses["eager"], losses[n])) for n in ("longest", "compiled")}
    print(f"  compiled ÷ eager time: {med['compiled'] / med['eager']:.2f}×;  compiled ÷ longest: "
          f"{med['compiled'] / med['longest']:.2f}×;  max loss difference from eager (same rows, every step): "
          + ", ".join(f"{n} {d:.2e}" for n, d in diff.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
