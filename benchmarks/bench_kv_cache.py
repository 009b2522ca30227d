"""Decoding with transformers' DynamicCache against the reserved KV cache
(workbench/models/kv_cache.py): the same `generate` call of the shift probe on the demo run's
decoding copy, 16 `instructions` prompts, alternating the two caches in one process after a
warm-up, medians of `--repeats`. Checks that tokens and logits are bit-identical.

    python benchmarks/bench_kv_cache.py [--settings bf16:64,bf16:256,fp32:256] [--json out.json]

Needs the demo run (`make demo` → demo-output/sft-lora). Set OMP_NUM_THREADS to the cores.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="smollm2-135m-instruct")
    p.add_argument("--run", default=str(REPO / "demo-output/sft-lora"))
    p.add_argument("--settings", default="bf16:64,bf16:256,fp32:256", help="precision:new_tokens pairs")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()

    import workbench.analysis.scoring as scoring
    from workbench.allocator import keep_freed_memory
    from workbench.analysis.prompts import encode, has_chat_template, normalise_prompts
    from workbench.analysis.resolve import resolve_pair
    from workbench.analysis.shift import _texts

    keep_freed_memory()
    _, tuned = resolve_pair(args.base, args.run)
    msgs = normalise_prompts("instructions", max_prompts=args.prompts)
    ids = encode(tuned.tokenizer, _texts(tuned, msgs, None), templated=has_chat_template(tuned.tokenizer))
    reserved = scoring.reserved_cache_kwargs
    variants = {"dynamic": lambda *a, **k: {}, "reserved": reserved}
    rows = []
    for setting in args.settings.split(","):
        precision, new = setting.split(":")[0], int(setting.split(":")[1])
        decoder = scoring.decoding_copy(tuned, precision)
        scoring.generate(decoder, ids[:2], max_new_tokens=4, precision=precision)  # warm-up
        times, outs = {k: [] for k in variants}, {}
        for _ in range(args.repeats):
            for name, kwargs in variants.items():
                scoring.reserved_cache_kwargs = kwargs
                start = time.perf_counter()
                outs[name] = scoring.generate(decoder, ids, max_new_tokens=new, precision=precision)
                times[name].append(time.perf_counter() - start)
        scoring.reserved_cache_kwargs = reserved
        identical = all(torch.equal(a, b) for a, b in zip(outs["dynamic"], outs["reserved"]))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"precision": precision, "new_tokens": new, "batch": len(ids), "seconds": times,
                     "median_s": med, "ratio": med["reserved"] / med["dynamic"], "identical": identical})
        print(json.dumps(rows[-1]), flush=True)
        del decoder
    print("| precision | new tokens | DynamicCache s | reserved s | reserved ÷ dynamic | bit-identical |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['precision']} | {r['new_tokens']} | {r['median_s']['dynamic']:.2f} | "
              f"{r['median_s']['reserved']:.2f} | **{r['ratio']:.2f}×** | {r['identical']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
