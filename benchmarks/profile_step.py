"""Where a training step's time goes: torch's profiler over a few steps of `workbench train`.

    OMP_NUM_THREADS=2 python benchmarks/profile_step.py --path sft-lora --steps 8 --profile 3

Runs the same configuration as bench_vs_trl.py's `workbench` variant, profiles the last
`--profile` steps (after warm-up) and prints the operators by self CPU time, then the same time
grouped into matmuls, casts/copies, attention, elementwise, optimizer and the rest. Not a timing
benchmark (the profiler adds its own overhead): it says *where* the time goes, as shares.
"""
from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

GROUPS = (  # first match wins; operator names as torch's profiler reports them
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "mkldnn")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention")),
    ("optimizer", ("_foreach", "adam", "Optimizer")),
    ("cast/copy", ("aten::copy_", "aten::to", "aten::_to_copy", "aten::clone", "aten::contiguous", "aten::cat")),
    ("softmax/loss", ("log_softmax", "softmax", "nll_loss", "cross_entropy", "logsumexp", "gather")),
    ("dropout", ("dropout", "bernoulli", "native_dropout")),
    ("elementwise", ("aten::mul", "aten::add", "aten::div", "aten::sub", "aten::pow", "aten::rsqrt", "aten::mean",
                     "aten::silu", "aten::neg", "aten::sum", "aten::exp", "aten::sigmoid", "aten::where", "aten::fill_",
                     "aten::zero_", "aten::zeros", "aten::empty", "aten::ones", "aten::masked_fill")),
)


def group(name: str) -> str:
    low = name.lower()
    for label, keys in GROUPS:
        if any(k.lower() in low for k in keys):
            return label
    return "other"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", default="sft-lora", choices=("sft-lora", "dpo-lora"))
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--profile", type=int, default=3, help="how many of the last steps to profile")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--packing", action="store_true", help="SFT: pack examples padding-free (`packing=true`)")
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from workbench import TrainConfig, train

    method, peft = args.path.split("-")
    dataset = "instructions" if method == "sft" else "preferences"
    margs = {"probe_pairs": 0, "probe_kl_prompts": 0, "eval_on_start": False} if method == "dpo" else {}
    if args.packing:
        margs["packing"] = True
    prof = profile(activities=[ProfilerActivity.CPU])
    start = args.steps - args.profile

    def listener(rec):  # called after each logged training step, in the training thread
        if rec.kind.value != "train":
            return
        if rec.step == start:
            prof.start()
        elif rec.step == args.steps:
            prof.stop()

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model=args.model, dataset=dataset, method=method, peft=peft, max_steps=args.steps,
                          batch_size=args.batch_size, max_length=args.max_length, learning_rate=1e-4,
                          eval_rows=0, sample_prompts=0, save_steps=10 ** 6, run_dir=str(Path(tmp) / "run"),
                          max_rows=args.rows, method_args=margs, precision=args.precision,
                          peft_args={"r": 8, "lora_alpha": 16})
        train(cfg, listeners=[listener])

    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.profile} steps profiled, "
          f"{total / 1e6:.2f} s of operator self time\n")
    print(f"{'operator':60s} {'calls':>7s} {'self s':>8s} {'share':>7s}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
        print(f"{e.key[:60]:60s} {e.count:7d} {e.self_cpu_time_total / 1e6:8.3f} {e.self_cpu_time_total / total:7.1%}")
    by_group: dict[str, float] = collections.Counter()
    for e in events:
        by_group[group(e.key)] += e.self_cpu_time_total
    print(f"\n{'group':16s} {'self s':>8s} {'share':>7s}")
    for label, t in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"{label:16s} {t / 1e6:8.3f} {t / total:7.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
