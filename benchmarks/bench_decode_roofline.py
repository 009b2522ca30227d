"""Where a decode step of the token-shift probe goes, against the machine's memory bandwidth.

Greedy decoding of a 135M model at batch 16 does ~4 GFLOP per step but must stream every
linear weight from memory once per step, so its roofline is bandwidth, not the matmul peak
the other benchmarks report. This measures, in one process:

- the read bandwidth (summing a 256 MiB tensor, best of 5), copy bandwidth and the bf16
  matmul peak (`bench_vs_trl.matmul_peak`), so the step's floor is max(FLOPs ÷ peak,
  weight bytes ÷ read bandwidth);
- the probe's decode: the decoding copy of smollm2-135m-instruct (`--precision bf16`: linears
  stored in bf16, bf16 autocast, what `workbench shift --precision bf16` generates with;
  `fp32`: fp32 linears on MKL-packed weights, the default where the CPU has no native bf16),
  16 `instructions` prompts, 64 new tokens, greedy;
- one profiled stretch of 16 decode steps: the matmuls' share of the step (torch.profiler;
  `aten::mm` plus MKL's packed linears).

    python benchmarks/bench_decode_roofline.py [--threads 2] [--precision bf16|fp32] [--json out.json]

Run it on a quiet machine; read the fractions, not the absolute times.
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def bandwidth() -> dict[str, float]:
    a = torch.empty(256 * 2**20 // 4)
    b = torch.empty_like(a)
    a.fill_(1.0)
    b.copy_(a)
    best_copy = best_read = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        b.copy_(a)
        best_copy = min(best_copy, time.perf_counter() - t)
        t = time.perf_counter()
        a.sum()
        best_read = min(best_read, time.perf_counter() - t)
    n = a.numel() * a.element_size()
    return {"read_GBps": n / best_read / 1e9, "copy_GBps": 2 * n / best_copy / 1e9}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from bench_vs_trl import matmul_peak
    from torch.profiler import ProfilerActivity, profile

    from workbench.analysis.scoring import left_pad
    from workbench.data import load
    from workbench.models import load_model
    from workbench.models.decoding import decoding_copy

    bw = bandwidth()
    bf16 = args.precision == "bf16"
    peak = matmul_peak(args.threads)[args.precision]
    model, tok = load_model("smollm2-135m-instruct", device="cpu")
    dec = decoding_copy(model.eval(), merge=False, bf16=bf16)
    rows = load("instructions", split="eval", max_rows=args.prompts)
    ids = [tok.apply_chat_template(r["messages"][:1], add_generation_prompt=True) for r in rows]
    ids = [x if isinstance(x, list) else x["input_ids"] for x in ids]
    inp, mask = left_pad(ids, tok.pad_token_id, "cpu")
    weight_bytes = sum(m.weight.numel() * m.weight.element_size() for m in dec.modules()
                       if isinstance(m, torch.nn.Linear))

    def generate(n: int) -> float:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            t = time.perf_counter()
            dec.generate(input_ids=inp, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                         pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None,
                         return_dict_in_generate=True, output_logits=True)
            return time.perf_counter() - t

    generate(4)  # warm-up
    prefill = min(generate(1) for _ in range(3))
    total = min(generate(args.new_tokens) for _ in range(3))
    step = (total - prefill) / (args.new_tokens - 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        generate(17)
    events = {e.key: e for e in prof.key_averages()}
    all_self = sum(e.self_cpu_time_total for e in events.values())
    mm = sum(events[k].self_cpu_time_total for k in ("aten::mm", "mkl::_mkl_linear", "mkldnn::_linear_pointwise")
             if k in events)
    mm_share = mm / all_self if all_self else float("nan")
    step_flops = 2 * len(ids) * weight_bytes / (2 if bf16 else 4)  # bytes per parameter
    floor = max(step_flops / peak, weight_bytes / (bw["read_GBps"] * 1e9))
    out = {
        "threads": args.threads, "precision": args.precision, "batch": len(ids), "new_tokens": args.new_tokens,
        **bw, f"{args.precision}_peak_GFLOPs": peak / 1e9, "ridge_flop_per_byte": peak / (bw["read_GBps"] * 1e9),
        "step_GFLOP": step_flops / 1e9, "roofline_step_ms": floor * 1e3,
        "linear_weight_MB": weight_bytes / 1e6, "prefill_s": prefill, "decode_total_s": total,
        "decode_step_ms": step * 1e3, "tokens_per_s": len(ids) / step,
        "weights_streamed_GBps": weight_bytes / step / 1e9,
        "share_of_read_bandwidth": weight_bytes / step / 1e9 / bw["read_GBps"],
        "share_of_roofline": floor / step,
        "matmul_share_of_step": mm_share,
        "matmul_GBps": weight_bytes / (step * mm_share) / 1e9,
    }
    for k, v in out.items():
        print(f"{k:26} {v:.3f}" if isinstance(v, float) else f"{k:26} {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
