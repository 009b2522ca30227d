"""Token-shift probe end to end under its settings: precision (fp32 / bf16) × batch size, on
the demo run (`make demo` → demo-output/sft-lora) against its base, 16 `instructions` prompts.

Reports tokens per CPU-second with one torch thread (CPU time, so a busy machine changes the
figure little; on a quiet machine with one thread it is also wall time) and the split, which
under bf16 changes with the batch size while fp32's does not — why fp32 is the default.

    OMP_NUM_THREADS=1 python benchmarks/bench_shift_settings.py [--run demo-output/sft-lora]
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="smollm2-135m-instruct")
    p.add_argument("--run", default="demo-output/sft-lora")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    from workbench.analysis import token_shift
    from workbench.analysis.resolve import resolve_pair

    b, t = resolve_pair(args.base, args.run)
    rows = {}
    for precision in ("fp32", "bf16"):
        for batch in (8, 16):
            c0, w0 = time.process_time(), time.time()
            r = token_shift(b, t, "instructions", max_prompts=args.prompts, batch_size=batch, precision=precision,
                            progress=False)
            cpu = time.process_time() - c0
            rows[f"{precision} batch {batch}"] = {
                "cpu_s": round(cpu, 1), "wall_s": round(time.time() - w0, 1), "tokens": r.n_tokens,
                "tokens_per_cpu_s": round(r.n_tokens / cpu, 1),
                "split": {k: round(v, 3) for k, v in r.fractions.items()}}
            print(precision, batch, rows[f"{precision} batch {batch}"], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
