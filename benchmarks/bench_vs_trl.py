"""`workbench train` against the plain TRL script a user would otherwise write.

For each path (SFT+LoRA, full fine-tuning, DPO+LoRA, GRPO+LoRA) the variants train the
same model on the same rows with the same LoRA r/alpha, batch, max_length, learning rate and
steps, with evaluation, samples and checkpoints off:

  workbench     `workbench.train(...)` (what `workbench train` runs)
  workbench-grouped  the same with `group_by_length` (SFT and DPO paths): batches of similar length
  workbench-packed  SFT with `packing=true`: TRL's best-fit-decreasing packing into rows of
                max_length tokens, padding-free (one flat row, position ids restart per example)
  workbench-stock-kernels  `workbench` with transformers' own SDPA and autocast re-casting the
                frozen LoRA weights (WORKBENCH_CPU_ATTENTION=0 WORKBENCH_FROZEN_BF16=0): what the
                CPU attention and the frozen bf16 weights gain (same batches as `workbench`)
  workbench-trl-sampling  GRPO: `workbench` with TRL's own generation from the training model
                (WORKBENCH_SAMPLING_MIRROR=0) instead of the decoding mirror of the policy
  trl-defaults  the TRL script its docs teach: SFTConfig/DPOConfig/GRPOConfig with only those
                settings given, everything else TRL's default
  trl-same      the same script with our settings (activation checkpointing off, the same
                precision), i.e. what our layer costs or saves on top of TRL

The variants run interleaved (v1 v2 v3 v1 v2 v3 …), each in a fresh process with every core,
`--repeats` times; the table gives medians. Seconds per step and tokens/s come from the
trainer's per-step logs, skipping the first `--warmup` steps. MFU = model FLOPs per token ×
tokens/s ÷ the matmul peak of the precision the runs use (bf16 where the CPU has native bf16,
else fp32: `precision=auto`), measured in this same invocation (FLOPs per token: 6N for
full fine-tuning, 4N for LoRA — the frozen weights need no weight gradients — with N the
non-embedding parameters; our reading of the usual estimate, attention FLOPs left out).

    python benchmarks/bench_vs_trl.py --out benchmarks/results/vs_trl.json
    python benchmarks/bench_vs_trl.py --device cuda --out benchmarks/results/vs_trl_gpu.json
Run it on a quiet machine: another busy process changes the numbers several-fold. On a GPU
(`--device cuda`) both sides train there, the precision is bf16 (autocast) wherever the GPU has
it, and the peak is the GPU's dense matmul rate, measured the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = {  # path -> (workbench method, peft, dataset)
    "sft-lora": ("sft", "lora", "instructions"),
    "full-ft": ("sft", "full", "instructions"),
    "dpo-lora": ("dpo", "lora", "preferences"),
    "grpo-lora": ("grpo", "lora", "arithmetic"),
}
VARIANTS = ("workbench", "workbench-grouped", "workbench-packed", "workbench-stock-kernels", "workbench-trl-sampling",
            "trl-defaults", "trl-same")
OURS = ("workbench", "workbench-grouped", "workbench-packed")  # the speed-up column takes the fastest of these


def variants(path: str) -> tuple[str, ...]:
    """Length grouping is an SFT and DPO knob, packing an SFT one: GRPO runs without them; only
    GRPO samples."""
    method = PATHS[path][0]
    skip = {"workbench-grouped", "workbench-packed"} if method == "grpo" else {"workbench-trl-sampling"} | (
        set() if method == "sft" else {"workbench-packed"})
    return tuple(v for v in VARIANTS if v not in skip)


class StepLog:
    """Wall time and TRL's `num_tokens` at every logged step."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, step: int, logs: dict) -> None:
        if "loss" in logs:
            self.rows.append({"step": step, "time": time.time(), "loss": logs["loss"],
                              "num_tokens": logs.get("num_tokens")})


def _trl_callback(log: StepLog):
    from transformers import TrainerCallback

    class _Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            log.add(state.global_step, logs or {})

    return _Log()


def _rows(method: str, dataset: str, n: int) -> list[dict]:
    """The rows `workbench train` trains on, in the method's data format: for SFT, prompt and
    completion, on which TRL's default is the same completion-only loss as ours (on the
    `messages` form TRL would train on the prompt tokens too, a different loss)."""
    from workbench import data
    from workbench.methods import get_method

    return list(data.load(dataset, format=get_method(method).data_format, split="train", max_rows=n, seed=0))


def run_workbench(path: str, args, work: Path, log: StepLog, knob: str | None = None) -> None:
    from workbench import TrainConfig, train

    method, peft, dataset = PATHS[path]
    margs = {knob: True} if knob else {}
    if method == "dpo":
        margs = {**margs, "probe_pairs": 0, "probe_kl_prompts": 0, "eval_on_start": False}
    if method == "grpo":
        margs = {"num_generations": args.generations, "max_completion_length": args.completion_length}
    cfg = TrainConfig(model=args.model, dataset=dataset, method=method, peft=peft, max_steps=args.steps,
                      batch_size=args.batch_size, max_length=args.max_length, learning_rate=args.lr,
                      eval_rows=0, sample_prompts=0, save_steps=10 ** 6, run_dir=str(work / "run"),
                      max_rows=args.rows, method_args=margs, precision=args.precision, device=args.device,
                      peft_args={"r": args.r, "lora_alpha": args.alpha} if peft == "lora" else {})
    train(cfg, listeners=[lambda rec: rec.kind.value == "train" and log.add(rec.step, rec.values)])


def run_trl(path: str, args, work: Path, log: StepLog, same: bool) -> None:
    """The plain script: TRL's trainer and config, PEFT's LoraConfig, datasets' Dataset."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.data import tasks
    from workbench.models import resolve, use_bf16

    method, peft, dataset = PATHS[path]
    model_dir = resolve(args.model)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ds = Dataset.from_list(_rows(method, dataset, args.rows))
    lora = LoraConfig(r=args.r, lora_alpha=args.alpha, target_modules="all-linear",
                      task_type="CAUSAL_LM") if peft == "lora" else None
    # seed=0, ours (TRL's default is 42): the same batches and, as TRL seeds before it wraps the model
    # in the adapter, the same initial LoRA weights, so the loss curves compare step by step
    common = dict(output_dir=str(work / "out"), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                  learning_rate=args.lr, logging_steps=1, save_strategy="no", report_to="none",
                  use_cpu=args.device == "cpu", seed=0)
    if same:  # our settings on top of TRL's: no activation checkpointing, our precision choice
        common.update(activation_checkpointing=False, bf16=use_bf16(args.device, args.precision), disable_tqdm=True)
    if method == "sft":
        from trl import SFTConfig as Config
        from trl import SFTTrainer as Trainer
        kw = {}
        common["max_length"] = args.max_length
    elif method == "dpo":
        from trl import DPOConfig as Config
        from trl import DPOTrainer as Trainer
        kw = {}
        common["max_length"] = args.max_length
    else:
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer

        def correct(completions, answer, task, **_):
            return [tasks.check(t, tasks.completion_text(c), a) for c, a, t in zip(completions, answer, task)]

        kw = {"reward_funcs": correct}
        common.update(num_generations=args.generations, max_completion_length=args.completion_length)
    trainer = Trainer(model=model, args=Config(**common), train_dataset=ds, processing_class=tok,
                      peft_config=lora, callbacks=[_trl_callback(log)], **kw)
    trainer.train()


def one(variant: str, path: str, args) -> dict:
    """One training run in this process; returns its per-step log."""
    log = StepLog()
    with tempfile.TemporaryDirectory() as tmp:
        if variant == "workbench-stock-kernels":
            os.environ.update(WORKBENCH_CPU_ATTENTION="0", WORKBENCH_FROZEN_BF16="0")  # before the model loads
        if variant == "workbench-trl-sampling":
            os.environ["WORKBENCH_SAMPLING_MIRROR"] = "0"
        if variant.startswith("workbench"):
            knob = {"workbench-grouped": "group_by_length", "workbench-packed": "packing"}.get(variant)
            run_workbench(path, args, Path(tmp), log, knob)
        else:
            run_trl(path, args, Path(tmp), log, same=variant == "trl-same")
    return {"variant": variant, "path": path, "steps": log.rows}


def summarise(rows: list[dict], warmup: int) -> dict:
    rows = [r for r in rows if r["step"] > warmup]
    if len(rows) < 2:
        return {}
    dt = [b["time"] - a["time"] for a, b in zip(rows, rows[1:])]
    out = {"s_per_step": statistics.median(dt)}
    tok = [r["num_tokens"] for r in rows]
    if all(t is not None for t in tok):
        out["tokens_per_s"] = (tok[-1] - tok[0]) / (rows[-1]["time"] - rows[0]["time"])
    return out


def matmul_peak(threads: int, n: int | None = None, seconds: float = 3.0, device: str = "cpu") -> dict:
    """bf16 and fp32 matmul FLOP/s on `device` (best of repeated n×n×n products; on CPU with
    `threads` threads). fp32 on a GPU is true fp32: torch leaves TF32 off for matmuls by default,
    and so do the training runs."""
    import torch

    torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    n = n or (8192 if cuda else 2048)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
        a @ b
        sync()
        best, end = 0.0, time.time() + seconds
        while time.time() < end:
            t = time.perf_counter()
            for _ in range(5 if cuda else 1):  # a GPU product is ~1 ms: time several per reading
                a @ b
            sync()
            best = max(best, (5 if cuda else 1) * 2 * n ** 3 / (time.perf_counter() - t))
        out[name] = best
    return out


def _device_name(device: str) -> str:
    import platform

    import torch

    return torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())


def flops_per_token(model: str, peft: str) -> float:
    from transformers import AutoModelForCausalLM

    from workbench.models import resolve

    m = AutoModelForCausalLM.from_pretrained(resolve(model))
    n = sum(p.numel() for name, p in m.named_parameters() if "embed" not in name)
    return (6 if peft == "full" else 4) * n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--paths", default=",".join(PATHS))
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--completion-length", type=int, default=32)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="workbench's precision and trl-same's (trl-defaults keeps TRL's bf16=True); fp32 "
                        "shows whether the loss curves differ beyond bf16 rounding")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="which variants to run (e.g. leave out trl-defaults where TRL's default bf16 is emulated "
                        "and a run takes ~25x longer)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both sides train")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/vs_trl.json"))
    p.add_argument("--one", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    p.add_argument("--table", metavar="JSON", help="print the table of an earlier report and exit")
    args = p.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return 0
    if args.one:
        print("RESULT " + json.dumps(one(*args.one, args)), flush=True)
        return 0
    from workbench.threads import planned_threads

    threads = planned_threads()  # every core, unless OMP_NUM_THREADS says otherwise
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    started, runs = time.time(), []
    for rep in range(args.repeats):
        for path in args.paths.split(","):
            for variant in (v for v in variants(path) if v in args.variants.split(",")):
                cmd = [sys.executable, __file__, *sys.argv[1:], "--one", variant, path]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                if done.returncode or not line:
                    runs.append({"variant": variant, "path": path, "repeat": rep,
                                 "error": (done.stderr or done.stdout).strip().splitlines()[-1:]})
                    print(f"{path} {variant}: FAILED {runs[-1]['error']}", file=sys.stderr)
                    continue
                r = json.loads(line[-1][len("RESULT "):])
                r.update(repeat=rep, **summarise(r["steps"], args.warmup))
                runs.append(r)
                print(f"{path:10s} {variant:13s} rep {rep}: {r.get('s_per_step', float('nan')):.2f} s/step "
                      f"{r.get('tokens_per_s', float('nan')):.0f} tok/s", file=sys.stderr, flush=True)
                Path(args.out).write_text(json.dumps({"partial": True, "runs": runs}))  # a cut-off run keeps these
    peak = matmul_peak(threads, device=args.device)
    fpt = {path: flops_per_token(args.model, PATHS[path][1]) for path in args.paths.split(",")}
    from workbench.models import use_bf16

    report = {"settings": {k: v for k, v in vars(args).items() if k not in ("one", "out")}, "threads": threads,
              "precision": "bf16" if use_bf16(args.device, args.precision) else "fp32",
              "device": _device_name(args.device),
              "load_avg_end": os.getloadavg(), "wall_s": round(time.time() - started, 1),
              "matmul_peak_flops": peak, "flops_per_token": fpt, "runs": runs}
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(table(report))
    return 0


def table(report: dict) -> str:
    """Markdown: median s/step and tokens/s; workbench's speed-up in tokens/s, from the faster of
    its variants (the variants shuffle differently, so steps carry different numbers of tokens);
    MFU against the measured peak of the precision the runs used (bf16 in reports older than that
    field)."""
    precision = report.get("precision", "bf16")
    runs, peak = report["runs"], report["matmul_peak_flops"][precision]
    lines = ["| path | variant | runs | s/step (median) | tokens/s (median) | workbench speed-up (tokens/s) | "
             f"MFU vs {precision} peak |", "|---|---|---|---|---|---|---|"]
    for path in report["settings"]["paths"].split(","):
        med = {}
        for v in VARIANTS:
            ok = [r for r in runs if r["path"] == path and r["variant"] == v and "tokens_per_s" in r]
            if ok:
                med[v] = (len(ok), statistics.median(r["s_per_step"] for r in ok),
                          statistics.median(r["tokens_per_s"] for r in ok))
        for v, (n, sps, tps) in med.items():
            best = max((med[w][2] for w in OURS if w in med), default=float("nan"))
            ratio = best / tps
            mfu = tps * report["flops_per_token"][path] / peak
            lines.append(f"| {path} | {v} | {n} | {sps:.2f} | {tps:.0f} | {ratio:.2f}× | {mfu:.2%} |")
    return "\n".join(lines + ["", loss_curves(report)])


def loss_curves(report: dict) -> str:
    """Markdown: the training loss at every step (median over repeats) of each variant, and
    the largest gap to workbench's. workbench, trl-same and trl-defaults draw the same batches
    (same rows, same seed), so their curves should agree up to rounding; workbench-grouped and
    workbench-packed draw other batches (a packed step holds more examples), so no gap for them."""
    lines = ["| path | variant | loss at steps 1, 2, … (median over runs) | max abs. gap to workbench |",
             "|---|---|---|---|"]
    for path in report["settings"]["paths"].split(","):
        curves = {}
        for v in VARIANTS:
            ok = [r for r in report["runs"] if r["path"] == path and r["variant"] == v and r.get("steps")]
            if ok:
                steps = sorted({s["step"] for r in ok for s in r["steps"]})
                curves[v] = [statistics.median(s["loss"] for r in ok for s in r["steps"] if s["step"] == k)
                             for k in steps]
        for v, curve in curves.items():
            ref = curves.get("workbench")
            gap = (f"{max(abs(a - b) for a, b in zip(curve, ref)):.4f}" if ref and v not in OURS else "—")
            lines.append(f"| {path} | {v} | {', '.join(f'{x:.4f}' for x in curve)} | {gap} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
