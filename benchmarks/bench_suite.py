"""How long `make test` takes, and where its cores sit idle.

Runs the README's test command (`make test`) `--repeats` times in this checkout and reports,
per run: pytest's own time, the wall time, the CPU seconds of everything it started (user +
sys, from the children's rusage), the cores' average use (CPU ÷ wall), and the long fixture
set-ups. A module fixture built once per session (`built_once`) shows up a second time as a
long `setup` on another worker when that worker waited on the build's lock: those are listed
as waits, since the core sat idle meanwhile.

    python benchmarks/bench_suite.py [--repeats 1] [--out benchmarks/results/suite.md]
    python benchmarks/bench_suite.py --repeats 2 --variants forked:,fresh:WORKBENCH_TEST_FRESH_KERNELS=1

`--variants NAME:VAR=VALUE,...` runs each variant with those environment variables, alternating
within each repeat (the kernel fork server of tests/conftest.py on and off, above).

Run it on a quiet machine (it is the only thing that should be running); runs of the same code
vary by ±20 s on 2 cores, so compare CPU seconds as well as wall time.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(extra_env: dict[str, str] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        env = {**os.environ, **(extra_env or {}), "PYTEST_ADDOPTS": f"--junitxml={xml}"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(["make", "test"], cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        tail = proc.stdout[-5000:]
        summary = re.search(r"(\d+) passed.*? in ([\d.]+)s", tail)
        cases = [(c.get("classname", "") + "::" + c.get("name", ""), float(c.get("time", 0)))
                 for c in ET.parse(xml).getroot().iter("testcase")] if xml.is_file() else []
    setups = [(m.group(2), float(m.group(1))) for m in re.finditer(r"([\d.]+)s setup\s+(\S+)", tail)]
    by_module = defaultdict(list)
    for name, seconds in setups:
        if seconds >= 10:
            by_module[name.split("::")[0]].append((name, seconds))
    waits = [w for group in by_module.values() for w in sorted(group, key=lambda x: -x[1])[1:]]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    kernels = re.search(r"kernels: (\d+) forked.*?, (\d+) started fresh", proc.stdout[-20000:])
    return {"rc": proc.returncode, "kernels_forked_fresh": kernels.groups() if kernels else None,
            "passed": int(summary.group(1)) if summary else None,
            "pytest_s": float(summary.group(2)) if summary else None, "wall_s": wall, "cpu_s": cpu,
            "cores_used": cpu / wall, "sum_of_test_times_s": sum(t for _, t in cases),
            "long_setups": [s for s in setups if s[1] >= 10], "waits": waits}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", default=None, help="write a markdown table here")
    p.add_argument("--variants", default="", help="NAME:VAR=VALUE;VAR=VALUE,NAME:... run alternately")
    args = p.parse_args()
    variants = [("default", {})]
    if args.variants:
        variants = []
        for item in args.variants.split(","):
            name, _, assignments = item.partition(":")
            variants.append((name, dict(a.split("=", 1) for a in assignments.split(";") if a)))
    runs = []
    for i in range(args.repeats):
        for name, extra in variants:
            r = one_run(extra)
            r["variant"] = name
            runs.append(r)
            print(f"run {i + 1} {name}: rc {r['rc']}, {r['passed']} passed, pytest {r['pytest_s']} s, "
                  f"wall {r['wall_s']:.0f} s, CPU {r['cpu_s']:.0f} s ({r['cores_used']:.2f} cores), "
                  f"kernels forked/fresh {r['kernels_forked_fresh']}, waits {r['waits']}", flush=True)
    lines = ["| run | variant | exit | passed | pytest s | wall s (make test) | CPU s | cores used "
             "| kernels forked / fresh | long set-ups (s) | lock waits |", "|---" * 11 + "|"]
    for i, r in enumerate(runs, 1):
        setups = "; ".join(f"{n.split('::')[0].split('/')[-1]} {s:.0f}" for n, s in r["long_setups"])
        waits = "; ".join(f"{n.split('::')[0].split('/')[-1]} {s:.0f}" for n, s in r["waits"]) or "none"
        kernels = " / ".join(r["kernels_forked_fresh"]) if r["kernels_forked_fresh"] else "-"
        lines.append(f"| {i} | {r['variant']} | {r['rc']} | {r['passed']} | {r['pytest_s']} | {r['wall_s']:.0f} | "
                     f"{r['cpu_s']:.0f} | {r['cores_used']:.2f} | {kernels} | {setups} | {waits} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
