"""`workbench train` with and without `workbench.allocator.keep_freed_memory`, side by side.

Each run is a fresh `workbench train` process (SmolLM2, LoRA, batch 4, eval and samples off
unless --eval), variants interleaved; reported per run: wall seconds, user and sys CPU seconds,
minor page faults (rusage) and peak RSS (`/usr/bin/time`) of the process, then medians per variant and
the ratios tuned ÷ untuned.

    python benchmarks/bench_allocator.py [--paths sft,dpo] [--steps 6] [--repeats 3] [--out F.md]

Run it on a quiet machine: it is the only thing that should be running.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"sft": "instructions", "dpo": "preferences"}


def one(method: str, tuned: bool, steps: int, evaluate: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(Path(sys.executable).parent / "workbench"), "train", "--model", "smollm2-135m-instruct",
               "--dataset", DATASETS[method], "--method", method, "--peft", "lora", "--max-steps", str(steps),
               "--batch-size", "4", "--run-dir", f"{tmp}/run"]
        off = ["--set", "eval_rows=0", "--set", "sample_prompts=0"]
        cmd += ["--set", f"eval_steps={steps // 2}"] if evaluate else off
        env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        env.update(HF_HUB_OFFLINE="1", WORKBENCH_MALLOC_TUNING="1" if tuned else "0")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        timed = ["/usr/bin/time", "-f", "%M", "-o", f"{tmp}/rss", *cmd]
        subprocess.run(timed, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss_mb = int(Path(f"{tmp}/rss").read_text().split()[-1]) / 1024
    return {"method": method, "tuned": tuned, "wall_s": wall, "user_s": after.ru_utime - before.ru_utime,
            "sys_s": after.ru_stime - before.ru_stime, "minflt": after.ru_minflt - before.ru_minflt,
            "peak_rss_mb": rss_mb}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paths", default="sft,dpo")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--eval", action="store_true", help="evaluate at the middle and the end too")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    runs = []
    for rep in range(args.repeats):
        for method in args.paths.split(","):
            for tuned in ((False, True) if rep % 2 == 0 else (True, False)):
                runs.append(one(method, tuned, args.steps, args.eval))
                print(json.dumps(runs[-1]), flush=True)
    lines = [f"`python benchmarks/bench_allocator.py --paths {args.paths} --steps {args.steps} --repeats {args.repeats}"
             f"{' --eval' if args.eval else ''}` — medians of {args.repeats}, each run a fresh process", "",
             "| path | allocator | wall s | user s | sys s | minor faults | peak RSS MB | tuned ÷ untuned wall |",
             "|---|---|---|---|---|---|---|---|"]
    for method in args.paths.split(","):
        med = {t: {k: statistics.median(r[k] for r in runs if r["method"] == method and r["tuned"] == t)
                   for k in ("wall_s", "user_s", "sys_s", "minflt", "peak_rss_mb")} for t in (False, True)}
        for t in (False, True):
            m = med[t]
            ratio = f"{med[True]['wall_s'] / med[False]['wall_s']:.2f}×" if t else "—"
            lines.append(f"| {method} | {'kept (default)' if t else 'glibc default'} | {m['wall_s']:.1f} | "
                         f"{m['user_s']:.1f} | {m['sys_s']:.1f} | {m['minflt']:,.0f} | "
                         f"{m['peak_rss_mb']:,.0f} | {ratio} |")
    print("\n".join(lines))
    if args.out:
        raw = "\n".join(json.dumps(r) for r in runs)
        Path(args.out).write_text("\n".join(lines) + f"\n\nraw:\n\n```\n{raw}\n```\n")


if __name__ == "__main__":
    main()
