"""GRPO's sampling call on the CPU, with and without each of its two decode-time changes, in one
process: SmolLM2 (or `--model`) + LoRA r 8, its bf16 decoding mirror (workbench/models/decoding_mirror.py),
arithmetic-style chat prompts, 32 sampled tokens (temperature 1, no top-k/top-p, as GRPO samples).

- `draw`: torch.multinomial's draw against the inverse CDF (workbench/models/sampling.py);
- `cache`: transformers' DynamicCache against the reserved KV cache (workbench/models/kv_cache.py),
  both with the inverse-CDF draw.

The variants alternate, medians of `--repeats`, per row count (4 = a training step's group,
32 = an evaluation call).

    OMP_NUM_THREADS=2 python benchmarks/bench_sampled_decode.py [--rows 4,32] [--repeats 4] [--json out.json]
    OMP_NUM_THREADS=2 python benchmarks/bench_sampled_decode.py --model gemma3-270m --rows 1,2   # 262k vocabulary
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--rows", default="4,32")
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--json", default=None)
    args = p.parse_args()

    from peft import LoraConfig, get_peft_model

    from workbench.allocator import keep_freed_memory
    from workbench.models import load_model
    from workbench.models.decoding_mirror import make_mirror
    from workbench.models.kv_cache import reserved_cache_kwargs
    from workbench.models.sampling import fast_sampling

    keep_freed_memory()  # as train() does: logit-sized blocks reused, not faulted in again each step
    model, tok = load_model(args.model, device="cpu")
    policy = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    mirror = make_mirror(policy, bf16=True, step=0)
    copy = mirror.copy
    tok.padding_side = "left"
    new = args.new_tokens
    settings = dict(max_new_tokens=new, min_new_tokens=new, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                    pad_token_id=tok.pad_token_id)

    def call(enc, draw: str, cache: str) -> float:
        extra = reserved_cache_kwargs(copy, enc["input_ids"].shape[1] + new) if cache == "reserved" else {}
        torch.manual_seed(0)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), \
                (fast_sampling() if draw == "inverse-cdf" else contextlib.nullcontext()):
            start = time.perf_counter()
            type(copy).generate(copy, **enc, **settings, **extra)  # the class's generate: no cache of its own
            return time.perf_counter() - start

    variants = {"draw": [("multinomial", "dynamic"), ("inverse-cdf", "dynamic")],
                "cache": [("inverse-cdf", "dynamic"), ("inverse-cdf", "reserved")]}
    results = []
    for rows in map(int, args.rows.split(",")):
        questions = [f"What is {17 + i} + {25 * i}? Answer with the number." for i in range(rows)]
        prompts = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
                   if tok.chat_template else q for q in questions]  # a base model (gemma3-270m): the plain question
        enc = tok(prompts, return_tensors="pt", padding=True)
        for change, pair in variants.items():
            for v in pair:
                call(enc, *v)  # warm-up
            times = {v: [] for v in pair}
            for _ in range(args.repeats):
                for v in pair:
                    times[v].append(call(enc, *v))
            before, after = (statistics.median(times[v]) for v in pair)
            results.append({"rows": rows, "change": change, "before": pair[0], "after": pair[1],
                            "before_s": before, "after_s": after, "ratio": after / before,
                            "times": {"/".join(v): t for v, t in times.items()}})
            print(f"rows {rows:3d}  {change:5s}  {'/'.join(pair[0])} {before:.2f} s  →  {'/'.join(pair[1])} "
                  f"{after:.2f} s  ({after / before:.2f}×)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "threads": torch.get_num_threads(), "new_tokens": new, "results": results},
                      f, indent=1)


if __name__ == "__main__":
    main()
