"""An SFT+LoRA training step against its matmul roofline at the step's own shapes.

MFU (bench_vs_trl.py) divides the model's FLOPs by the peak of one large square matmul
(2048³). A small model's step is made of smaller products: SmolLM2's layers are 576 wide and
LoRA's are rank 8, and no kernel reaches the square peak on them. This times, in one process,
every matrix product one step of SFT+LoRA must do, each alone at its own shape and dtype, and
sums them: the time a step would take if it were nothing but its matmuls, run back to back at
the speed the CPU gives those shapes. Per linear layer (frozen weight W, LoRA A and B), for T
tokens: forward X·Wᵀ, X·Aᵀ, (XAᵀ)·Bᵀ; backward dY·W (no gradient for W), dY·B, dYᵀ·(XAᵀ),
(dY·B)ᵀ·X, (dY·B)·A; the LM head forward and backward on the label positions only (what
workbench's CPU LM head computes). Attention, norms, activations, casts and the optimizer are
left out: the floor is a lower bound, and the step's share of it says how much of the step is
anything but matmuls at their best.

    python benchmarks/bench_train_roofline.py [--tokens 1032] [--step-s 2.79] [--json out.json]

`--tokens` and `--step-s` default to the packed SFT+LoRA step of benchmarks/results/vs_trl.md
(2026-12-07: ~1,032 tokens a step, 2.79 s); the label share is measured on the same rows.
Run it on a quiet machine with the thread count of the training runs.
"""
from __future__ import annotations

import argparse
import collections
import json
import statistics
import time

import torch


def shapes(config, tokens: int, labels: int, rank: int) -> collections.Counter:
    """(M, K, N, how) -> count for one step; how: "linear" is x·wᵀ with w stored (N, K)."""
    c = config.get_text_config()
    head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    h, q, kv, ff = c.hidden_size, c.num_attention_heads * head, c.num_key_value_heads * head, c.intermediate_size
    out: collections.Counter = collections.Counter()
    for din, dout in ((h, q), (h, kv), (h, kv), (q, h), (h, ff), (h, ff), (ff, h)):  # q k v o gate up down
        n = c.num_hidden_layers
        out[(tokens, din, dout, "linear")] += n            # forward x·Wᵀ
        out[(tokens, dout, din, "mm")] += n                # backward dY·W
        out[(tokens, din, rank, "linear")] += n            # LoRA forward x·Aᵀ
        out[(tokens, rank, dout, "linear")] += n           # (xAᵀ)·Bᵀ
        out[(tokens, dout, rank, "mm")] += n               # dY·B
        out[(dout, tokens, rank, "mm")] += n               # dB = dYᵀ·(xAᵀ)
        out[(rank, tokens, din, "mm")] += n                # dA = (dY·B)ᵀ·x
        out[(tokens, rank, din, "mm")] += n                # dX += (dY·B)·A
    out[(labels, h, c.vocab_size, "linear")] += 1          # LM head on the label positions
    out[(labels, c.vocab_size, h, "mm")] += 1              # its input gradient
    return out


def time_product(m: int, k: int, n: int, how: str, dtype, repeats: int = 15) -> float:
    a = torch.randn(m, k, dtype=dtype)
    b = torch.randn(n, k, dtype=dtype) if how == "linear" else torch.randn(k, n, dtype=dtype)

    def once():
        return torch.nn.functional.linear(a, b) if how == "linear" else a @ b

    for _ in range(3):
        once()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def label_share(model: str, rows: int) -> float:
    """Completion tokens ÷ all tokens on the rows bench_vs_trl trains on (completion-only loss)."""
    from transformers import AutoTokenizer

    from workbench import data
    from workbench.models import resolve
    from workbench.training.samples import prompt_token_ids

    tok = AutoTokenizer.from_pretrained(resolve(model))
    total = labels = 0
    for row in data.load("instructions", format="prompt_completion", split="train", max_rows=rows, seed=0):
        n_prompt = len(prompt_token_ids(tok, row["prompt"]))
        n_all = len(tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=True,
                                            return_dict=True)["input_ids"])
        total, labels = total + n_all, labels + n_all - n_prompt
    return labels / total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--tokens", type=int, default=1032, help="tokens in one step")
    p.add_argument("--step-s", type=float, default=2.79, help="the measured step time to place against the floor")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from bench_vs_trl import flops_per_token, matmul_peak
    from transformers import AutoConfig

    from workbench.models import resolve

    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    share = label_share(args.model, args.rows)
    labels = round(args.tokens * share)
    plan = shapes(AutoConfig.from_pretrained(resolve(args.model)), args.tokens, labels, args.rank)
    peak = matmul_peak(args.threads)[args.precision]
    rows, floor, flops = [], 0.0, 0.0
    for (m, k, n, how), count in sorted(plan.items(), key=lambda kv: -kv[0][0] * kv[0][1] * kv[0][2] * kv[1]):
        t = time_product(m, k, n, how, dtype)
        f = 2 * m * k * n
        rows.append({"m": m, "k": k, "n": n, "how": how, "count": count, "s_each": t,
                     "s_total": t * count, "GFLOPs_rate": f / t / 1e9})
        floor, flops = floor + t * count, flops + f * count
    model_flops = flops_per_token(args.model, "lora") * args.tokens
    report = {"settings": vars(args), "label_share": share, "labels": labels, "peak_flops": peak,
              "step_matmul_GFLOP": flops / 1e9, "model_GFLOP_4N": model_flops / 1e9,
              "floor_at_shapes_s": floor, "floor_at_peak_s": flops / peak,
              "share_of_shape_roofline": floor / args.step_s, "share_of_peak_roofline": flops / peak / args.step_s,
              "products": rows}
    print(f"{args.precision}, {args.threads} threads, {args.tokens} tokens a step ({labels} labels, "
          f"{share:.0%}); square-matmul peak {peak / 1e9:.0f} GFLOP/s")
    print(f"step's matmuls: {flops / 1e9:.0f} GFLOP (4N × tokens: {model_flops / 1e9:.0f})")
    print(f"floor at the square peak: {flops / peak:.3f} s; at the step's own shapes, each timed alone: "
          f"{floor:.3f} s ({flops / floor / 1e9:.0f} GFLOP/s, {flops / floor / peak:.0%} of the peak)")
    print(f"a measured step of {args.step_s:.2f} s is at {floor / args.step_s:.0%} of the shapes' roofline and "
          f"{flops / peak / args.step_s:.1%} of the peak's")
    print("\n| M×K×N | how | count | ms each | ms in all | GFLOP/s |\n|---|---|---|---|---|---|")
    for r in rows[:12]:
        print(f"| {r['m']}×{r['k']}×{r['n']} | {r['how']} | {r['count']} | {1e3 * r['s_each']:.3f} | "
              f"{1e3 * r['s_total']:.1f} | {r['GFLOPs_rate']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
