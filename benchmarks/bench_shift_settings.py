"""Token-shift probe end to end, this checkout against an earlier commit, on the demo run
(`make demo` → demo-output/sft-lora) against its base: 16 `instructions` prompts, 64 new tokens.

Every (code, precision, batch) variant runs in a fresh process (the earlier commit from a
`git worktree`, imported through PYTHONPATH), variants interleaved, `--repeats` rounds, medians
reported: these machines are noisy, so read the ratios. End-to-end tokens/s is analysed tokens
÷ (decoding + analysis) seconds, the figure the CLI prints; model loading is not in it. The
roofline column is model FLOPs (2·N per token for the tuned decode + 2·N for the base's teacher
forcing, N = non-embedding parameters + the LM head) × tokens/s ÷ the matmul peak of the
precision used, measured in the same invocation.

    python benchmarks/bench_shift_settings.py --before c4515ce [--repeats 3] [--out results.json]
    python benchmarks/bench_shift_settings.py --settings fp32:16,bf16:16,bf16:64   # this checkout only

The models load where `workbench shift` would put them (a CUDA GPU when there is one), and the
peak is measured on that device.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETTINGS = (("fp32", 16), ("bf16", 8), ("bf16", 16))  # the demo's default; the issue's; bf16 at 16

CHILD = """
import json, sys, time
from workbench.analysis import token_shift
from workbench.analysis.resolve import resolve_pair
base, run, prompts, precision, batch = sys.argv[1:6]
b, t = resolve_pair(base, run)
token_shift(b, t, "instructions", max_prompts=2, max_new_tokens=4, precision=precision, progress=False)
w = time.perf_counter()
r = token_shift(b, t, "instructions", max_prompts=int(prompts), batch_size=int(batch), precision=precision,
                progress=False)
print(json.dumps({"tokens": r.n_tokens, "wall_s": time.perf_counter() - w, **r.timings,
                  "end_to_end_tok_s": r.tokens_per_s["end_to_end"], "split": r.fractions}))
"""


def child(code: Path, args, precision: str, batch: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, args.base, args.run, str(args.prompts), precision,
                          str(batch)], env=env, cwd=code, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def flops_per_token(model: str) -> float:
    """Forward FLOPs per token of one model: 2 × (non-embedding parameters + the LM head)."""
    from workbench.models import load_model

    m, _ = load_model(model)
    n = sum(p.numel() for name, p in m.named_parameters() if "embed" not in name)
    head = m.get_output_embeddings().weight
    if "embed" in next(name for name, p in m.named_parameters() if p is head):  # tied: count it once more
        n += head.numel()
    return 2 * n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", default=None, help="git commit to compare against (checked out in a worktree)")
    p.add_argument("--settings", default=",".join(f"{p}:{b}" for p, b in SETTINGS),
                   help="precision:batch pairs to run (default: %(default)s)")
    p.add_argument("--base", default="smollm2-135m-instruct")
    p.add_argument("--run", default=str(REPO / "demo-output/sft-lora"))
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    args.run = str(Path(args.run).resolve())
    settings = [(x.split(":")[0], int(x.split(":")[1])) for x in args.settings.split(",")]

    sys.path.insert(0, str(REPO / "benchmarks"))
    from worktree import checkout

    with checkout(args.before) if args.before else contextlib.nullcontext() as old:
        runs: dict[str, list[dict]] = {}
        codes = (("before", old), ("after", REPO)) if args.before else (("after", REPO),)
        for rep in range(args.repeats):
            for precision, batch in settings:
                for label, code in codes:
                    key = f"{label} {precision} batch {batch}"
                    runs.setdefault(key, []).append(child(code, args, precision, batch))
                    print(rep, key, runs[key][-1], flush=True)

    import torch
    from bench_vs_trl import _device_name, matmul_peak
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = matmul_peak(torch.get_num_threads(), device=device)
    fpt = 2 * flops_per_token(args.base)  # the tuned decode + the base's teacher forcing
    summary = {}
    for key, rows in runs.items():
        tps = statistics.median(r["end_to_end_tok_s"] for r in rows)
        precision = key.split()[1]
        summary[key] = {"end_to_end_tok_s": tps, "tokens": rows[0]["tokens"],
                        "generate_s": statistics.median(r["generate_s"] for r in rows),
                        "analysis_s": statistics.median(r["analysis_s"] for r in rows),
                        "split": rows[0]["split"], "roofline": tps * fpt / peak[precision]}
    report = {"before": args.before, "device": _device_name(device), "settings": settings,
              "threads": torch.get_num_threads(), "matmul_peak_flops": peak,
              "flops_per_token": fpt, "summary": summary, "runs": runs}
    print(table(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


def table(report: dict) -> str:
    s = report["summary"]
    if not report.get("before"):
        lines = ["| precision, batch | tokens | end-to-end tok/s | decode s | analysis s | share of matmul peak | "
                 "split (unshifted / marginal / shifted) |", "|---|---|---|---|---|---|---|"]
        for precision, batch in report["settings"]:
            a = s[f"after {precision} batch {batch}"]
            split = " / ".join(f"{100 * a['split'][c]:.1f}" for c in ("unshifted", "marginal", "shifted"))
            lines.append(f"| {precision}, {batch} | {a['tokens']} | {a['end_to_end_tok_s']:.1f} | "
                         f"{a['generate_s']:.2f} | {a['analysis_s']:.2f} | {100 * a['roofline']:.2f}% | {split} % |")
        return "\n".join(lines)
    lines = ["| precision, batch | before tok/s | after tok/s | after ÷ before | decode s (before → after) | "
             "analysis s (before → after) | after: share of matmul peak | "
             "split after (unshifted / marginal / shifted) |",
             "|---|---|---|---|---|---|---|---|"]
    for precision, batch in report.get("settings", SETTINGS):
        b, a = s[f"before {precision} batch {batch}"], s[f"after {precision} batch {batch}"]
        split = " / ".join(f"{100 * a['split'][c]:.1f}" for c in ("unshifted", "marginal", "shifted"))
        lines.append(f"| {precision}, {batch} | {b['end_to_end_tok_s']:.1f} | {a['end_to_end_tok_s']:.1f} | "
                     f"**{a['end_to_end_tok_s'] / b['end_to_end_tok_s']:.2f}×** | {b['generate_s']:.1f} → "
                     f"{a['generate_s']:.1f} | {b['analysis_s']:.1f} → {a['analysis_s']:.1f} | "
                     f"{100 * a['roofline']:.1f}% | {split} % |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
