"""How long each notebook takes with the defaults a reader runs, and which cells take it.

Runs every notebook one at a time, exactly as `workbench check NB --profile defaults
--no-compare` does (one kernel with every core; the notebook's own parameters, no CI profile),
in a fresh process each, and reports the wall time (kernel start included) and the cells that
took more than 10 s, from papermill's per-cell durations. The goal (issue 20) is five minutes
each on the project's 2-core CPU machine. Course units run without their committed CI-settings
cell (the student release drops it too).

    python benchmarks/bench_notebooks.py --out benchmarks/results/notebooks.json
Run it on a quiet machine: a second busy process slows every notebook several-fold.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def without_ci_cell(path: Path, folder: Path) -> Path:
    """A course unit as students get it: the committed CI-settings cell removed."""
    from workbench.course.build import INJECTED_TAG

    nb = json.loads(path.read_text())
    nb["cells"] = [c for c in nb["cells"] if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    out = folder / path.name
    out.write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    return out


def slow_cells(executed: Path, over: float = 10.0) -> list[dict]:
    nb = json.loads(executed.read_text())
    return [{"cell": i, "seconds": round(c["metadata"]["papermill"]["duration"], 1),
             "source": "".join(c["source"]).strip().splitlines()[0][:70]}
            for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code" and (c.get("metadata", {}).get("papermill", {}).get("duration") or 0) > over]


def time_one(path: Path, work: Path) -> dict:
    out = work / path.stem
    cmd = [sys.executable, "-m", "workbench.cli.main", "check", str(path), "--profile", "defaults", "--no-compare",
           "--timeout", "1800", "-o", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # every core, as a reader has
    started = time.time()
    done = subprocess.run(cmd, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    row = {"notebook": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name,
           "status": "passed" if done.returncode == 0 else f"failed ({done.returncode})",
           "wall_s": round(time.time() - started), "load_avg_end": round(os.getloadavg()[0], 2)}
    executed = next(out.glob(f"*/{path.name}"), None)
    row["slow_cells"] = slow_cells(executed) if executed else []
    return row


def table(rows: list[dict]) -> str:
    lines = ["| notebook | wall (s) | ≤ 5 min | status | cells over 10 s (s) |", "|---|---|---|---|---|"]
    for r in rows:
        cells = "; ".join(f"{c['cell']}: {c['seconds']:.0f}" for c in r["slow_cells"])
        lines.append(f"| {r['notebook']} | {r['wall_s']} | {'yes' if r['wall_s'] <= 300 else 'no'} | "
                     f"{r['status']} | {cells} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", help="default: every main notebook and course units 2 and 5")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/notebooks.json"))
    args = p.parse_args()
    paths = [Path(n).resolve() for n in args.notebooks] or \
        MAIN + [ROOT / "notebooks/course/02_peft.ipynb", ROOT / "notebooks/course/05_data_selection.ipynb"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for path in paths:
            run = without_ci_cell(path, work) if path.parent.name == "course" else path
            rows.append(time_one(run, work / "out"))
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
