"""The CPU LM head (workbench/training/cpu_lm_head.py) against TRL's fused LM head,
inside the same `workbench train` run: SFT+LoRA and DPO+LoRA, variants interleaved, each a
fresh single-threaded process. Reported per variant: CPU seconds per step of the child
process (robust to other load on a shared machine, unlike wall time), wall seconds per
step, and the first/last logged loss (the two heads compute the same numbers, so the curves
must match step for step: same seed, same batches).

    python benchmarks/bench_lm_head.py --steps 6 --repeats 2 [--model smollm2-135m-instruct]

`--before COMMIT` adds that commit's CPU LM head as a variant (a `git worktree`, imported
through PYTHONPATH), interleaved with the others; `--packing` packs the SFT rows
(`--set method.packing=true`), where a step scores the most labelled positions.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATHS = {"sft-lora": ("sft", "instructions"), "dpo-lora": ("dpo", "preferences")}
VARIANTS = {"trl-fused-head": {"WORKBENCH_TRL_LM_HEAD": "1"}, "cpu-lm-head": {}}


def one(model: str, method: str, dataset: str, steps: int, env_extra: dict, packing: bool = False,
        code: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "workbench.cli.main", "train", "--model", model, "--dataset", dataset,
               "--method", method, "--peft", "lora", "--max-steps", str(steps), "--batch-size", "4",
               "--max-rows", "64", "--eval-rows", "0", "--sample-prompts", "0", "--save-steps", "100000",
               "--logging-steps", "1", "--run-dir", f"{d}/run", "--quiet"]
        if packing and method == "sft":
            cmd += ["--set", "method.packing=true"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env_extra,
               **({"PYTHONPATH": str(code)} if code else {})}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=code)
        wall = time.time() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        recs = [json.loads(x) for x in Path(f"{d}/run/metrics.jsonl").read_text().splitlines()]
        train = [r for r in recs if r["kind"] == "train" and r.get("loss") is not None]
        runtime = json.loads(Path(f"{d}/run/summary.json").read_text()).get("runtime_s")
        return {"cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, "wall_s": wall,
                "train_s_per_step": runtime / steps if runtime else None,
                "losses": [r["loss"] for r in train]}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None)
    p.add_argument("--before", default=None, help="git commit whose CPU LM head runs too, interleaved (a worktree)")
    p.add_argument("--packing", action="store_true", help="SFT rows packed (`--set method.packing=true`)")
    a = p.parse_args()
    res: dict = {}
    with contextlib.ExitStack() as stack:
        variants = {v: (env, None) for v, env in VARIANTS.items()}
        if a.before:
            sys.path.insert(0, str(Path(__file__).parent))
            from worktree import checkout
            variants[f"cpu-lm-head@{a.before[:8]}"] = ({}, stack.enter_context(checkout(a.before)))
        for _ in range(a.repeats):
            for path, (method, dataset) in PATHS.items():
                for v, (env, code) in variants.items():
                    r = one(a.model, method, dataset, a.steps, env, a.packing, code)
                    res.setdefault(path, {}).setdefault(v, []).append(r)
                    print(path, v, {k: (round(x, 2) if isinstance(x, float) else x) for k, x in r.items()
                                    if k != "losses"}, flush=True)
    print(f"\n{a.model}, {a.steps} steps, batch 4, 1 thread, medians of {a.repeats}, packing {a.packing}; "
          f"load {os.getloadavg()[0]:.1f}")
    print("| path | variant | train s/step | process CPU s | speed-up (train s/step) | losses equal |")
    print("|---|---|---|---|---|---|")
    for path, vs in res.items():
        base = statistics.median(r["train_s_per_step"] for r in vs["trl-fused-head"])
        for v, rs in vs.items():
            s = statistics.median(r["train_s_per_step"] for r in rs)
            same = all(abs(x - y) < 1e-3 for x, y in zip(rs[0]["losses"], vs["trl-fused-head"][0]["losses"]))
            print(f"| {path} | {v} | {s:.2f} | {statistics.median(r['cpu_s'] for r in rs):.0f} | "
                  f"{base / s:.2f}× | {same} |")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
