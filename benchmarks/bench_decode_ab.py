"""A decoding change against its absence, in one process: the same `generate` call of the shift
probe on the demo run's decoding copy, 16 `instructions` prompts, the two variants alternating
after a warm-up, medians of `--repeats`. Checks that tokens and logits are bit-identical.

- `--change kv-cache`: transformers' DynamicCache against the reserved KV cache
  (workbench/models/kv_cache.py);
- `--change prepack`: the decoding copy's linears plain against packed for decode steps
  (workbench/models/prepacked.py: oneDNN for bf16, MKL for fp32).

    python benchmarks/bench_decode_ab.py --change kv-cache [--settings bf16:64,bf16:256,fp32:256] [--json out.json]
    python benchmarks/bench_decode_ab.py --change prepack --settings fp32:64,bf16:64 --prompts 16

Needs the demo run (`make demo` → demo-output/sft-lora). Set OMP_NUM_THREADS to the cores.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="smollm2-135m-instruct")
    p.add_argument("--run", default=str(REPO / "demo-output/sft-lora"))
    p.add_argument("--change", choices=("kv-cache", "prepack"), default="kv-cache")
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
    names = ("dynamic", "reserved") if args.change == "kv-cache" else ("plain", "packed")
    rows = []
    for setting in args.settings.split(","):
        precision, new = setting.split(":")[0], int(setting.split(":")[1])
        if args.change == "prepack":  # two copies, made with the packing off and on
            decoders = {}
            for name in names:
                os.environ["WORKBENCH_PREPACK"] = "0" if name == "plain" else "1"
                decoders[name] = scoring.decoding_copy(tuned, precision)
            os.environ.pop("WORKBENCH_PREPACK")
        else:  # one copy, decoded with either cache
            decoders = dict.fromkeys(names, scoring.decoding_copy(tuned, precision))
        for decoder in decoders.values():
            scoring.generate(decoder, ids[:2], max_new_tokens=4, precision=precision)  # warm-up
        times, outs = {k: [] for k in names}, {}
        for _ in range(args.repeats):
            for name in names:
                scoring.reserved_cache_kwargs = (lambda *a, **k: {}) if name == "dynamic" else reserved
                start = time.perf_counter()
                outs[name] = scoring.generate(decoders[name], ids, max_new_tokens=new, precision=precision)
                times[name].append(time.perf_counter() - start)
        scoring.reserved_cache_kwargs = reserved
        identical = all(torch.equal(a, b) for a, b in zip(outs[names[0]], outs[names[1]]))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"change": args.change, "precision": precision, "new_tokens": new, "batch": len(ids),
                     "seconds": times, "median_s": med, "ratio": med[names[1]] / med[names[0]], "identical": identical})
        print(json.dumps(rows[-1]), flush=True)
        del decoders
    print(f"| precision | batch | new tokens | {names[0]} s | {names[1]} s | {names[1]} ÷ {names[0]} | bit-identical |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['precision']} | {r['batch']} | {r['new_tokens']} | {r['median_s'][names[0]]:.2f} | "
              f"{r['median_s'][names[1]]:.2f} | **{r['ratio']:.2f}×** | {r['identical']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
