"""What lm-eval's environment report costs a `workbench.evaluate` call, before/after leaving it out.

    OMP_NUM_THREADS=2 python benchmarks/bench_harness_env_report.py --repeats 3

simple_evaluate ends each call by adding torch's collect_env report to its results (11
subprocesses: pip list, nvidia-smi, …); the workbench keeps none of it and, since this change,
swaps in a stand-in for the call (workbench/evaluation/harness.py). Each variant runs in a fresh
process, alternating: one warm-up evaluation (imports, task manager), then 2 models × 2 built-in
tasks at limit 2 (a finished tiny-llama run as the second model), timed, with the CPU time of
child processes. "before" puts the report back by disabling the swap.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import contextlib, json, resource, sys, time
import workbench
import workbench.evaluation.harness as harness
if sys.argv[1] == "before":
    harness._without_env_report = contextlib.nullcontext
workbench.evaluate(["tiny-llama"], ["wb_arithmetic"], limit=1, write=False)
c0 = resource.getrusage(resource.RUSAGE_CHILDREN); t = time.perf_counter()
workbench.evaluate(["tiny-llama", sys.argv[2]], ["wb_arithmetic", "wb_preferences"], limit=2, write=False)
c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": time.perf_counter() - t,
                  "children_cpu_s": c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from workbench import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        run = train(TrainConfig.from_dict(dict(model="tiny-llama", max_steps=2, eval_rows=0, sample_prompts=0,
                                               run_dir=str(Path(tmp) / "run")))).run_dir
        got = {"before": [], "after": []}
        for _ in range(args.repeats):
            for variant in got:
                out = subprocess.run([sys.executable, "-c", CHILD, variant, str(run)], capture_output=True,
                                     text=True, check=True).stdout
                got[variant].append(json.loads(out.strip().splitlines()[-1]))
    for variant, runs in got.items():
        print(f"{variant:6s} wall s {[round(r['wall_s'], 2) for r in runs]} (median "
              f"{statistics.median(r['wall_s'] for r in runs):.2f}), child CPU s "
              f"{[round(r['children_cpu_s'], 2) for r in runs]}")
    ratio = statistics.median(r["wall_s"] for r in got["after"]) / statistics.median(r["wall_s"] for r in got["before"])
    print(f"after ÷ before (median wall): {ratio:.2f}×")
    if args.json:
        Path(args.json).write_text(json.dumps(got, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
