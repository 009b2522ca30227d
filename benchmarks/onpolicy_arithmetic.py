"""On-policy DPO and AFT vs offline DPO and GRPO on a verifiable arithmetic task.

smollm2-135m-instruct, two-digit + / − / ×(one digit) questions answered directly ("Reply with
only the number."): the built-in `arithmetic` set (3–4 digit numbers) is too hard for a 135M
model; on this easier set its greedy accuracy under the task checker is ~25% (measured by the
script as round 0), inside the 20–60% band where sampled groups are mostly not tied.

Runs (same LoRA, learning rate, constant schedule, and total optimizer steps):
  onpolicy-dpo  rounds × (sample k per prompt → checker → best-vs-worst pairs → DPO)
  onpolicy-aft  rounds × (sample k → checker → ranked lists → AFT constraint loss)
  offline-dpo   DPO on fixed pairs: gold answer vs a plausible wrong answer, for as many
                training prompts as the on-policy runs see in total
  grpo          TRL's GRPO with the same rewards, k generations per prompt and as many
                sampled completions in total as the on-policy runs
Held-out accuracy = greedy answers on the same eval rows, checked by the task checker, after
every round (the TRL runs train in `rounds` sessions, each resuming the last with a larger
--max-steps, and are evaluated between sessions).

    python benchmarks/onpolicy_arithmetic.py --out benchmarks/results/onpolicy.json
The runs go in parallel processes with one torch thread each.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = "Reply with only the number."
# The checker reads the first number of the last line, so the model's habit "18 × 2 = 36"
# scores 0; a small format reward for a bare number gives the groups something to rank.
REWARDS = {"correct": 1.0, "format": {"weight": 0.5, "pattern": r"^\s*-?\d+\.?\s*$"}}


def easy_rows(n: int, seed: int = 0) -> list[dict]:
    from workbench.data import tasks

    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        op = rng.choice("+-×")
        if op == "×":
            a, b = rng.randint(2, 19), rng.randint(2, 9)
            ans = a * b
        else:
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            if op == "-" and b > a:
                a, b = b, a
            ans = a + b if op == "+" else a - b
        q = f"What is {a} {op} {b}?"
        if q in seen:
            continue
        seen.add(q)
        row = tasks.make_row("arithmetic", q, str(ans), [f"{a} {op} {b} = {ans}."], "answer")
        row["prompt"] = [{"role": "user", "content": f"{q} {SUFFIX}"}]
        rows.append(row)
    return rows


def lenient(text: str, answer: str) -> float:
    """The last number anywhere in the reply (so '18 × 2 = 36' counts as 36)."""
    nums = re.findall(r"-?\d+", text)
    return float(bool(nums) and nums[-1] == answer)


def offline_pairs(rows: list[dict], seed: int = 0) -> list[dict]:
    from workbench.data.generated import wrong_answer

    rng = random.Random(seed)
    return [{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["answer"]}],
             "rejected": [{"role": "assistant", "content": wrong_answer("arithmetic", r["answer"], rng)}]}
            for r in rows]


def common(args, out: Path) -> dict:
    return dict(model=args.model, peft="lora", max_steps=args.steps, learning_rate=args.lr,
                batch_size=args.batch_size, max_length=128, eval_rows=args.eval_rows, sample_prompts=2,
                sample_max_new_tokens=args.max_new_tokens, save_steps=10 ** 6, eval_steps=10 ** 6, seed=0,
                lr_scheduler="constant")


def run_one(name: str, args, work: Path) -> dict:
    """One configuration in this process (called in a child process)."""
    import torch

    torch.set_num_threads(1)
    from workbench import TrainConfig, data, train
    from workbench.models import load_model
    from workbench.onpolicy import build_rewards, evaluate

    verifiable = work / "arithmetic_easy.jsonl"
    onpolicy = dict(rounds=args.rounds, prompts_per_round=args.prompts_per_round, k=args.k,
                    temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                    eval_max_new_tokens=args.max_new_tokens, sample_batch_size=16, progress=False,
                    rewards=REWARDS)
    started = time.time()
    from peft import PeftModel

    rows = list(data.load(str(verifiable), format="verifiable", split="eval", max_rows=args.eval_rows, seed=0))
    base_model, tok = load_model(args.model, device="cpu")

    def final_eval(model) -> dict:
        res = evaluate(model, tok, rows, build_rewards("correct"), max_new_tokens=args.max_new_tokens,
                       batch_size=16, progress=False)
        return {"accuracy": res.accuracy, "accuracy_last_number": sum(
            lenient(c, r["answer"]) for c, r in zip(res.completions, rows)) / len(rows),
            "length_mean": res.length_mean, "examples": res.completions[:4]}

    def adapter_eval(run_dir) -> dict:
        peft_model = PeftModel.from_pretrained(base_model, str(Path(run_dir) / "final"))
        try:
            return final_eval(peft_model)
        finally:
            peft_model.unload()  # back to the plain base for the next evaluation

    out = {"name": name}
    if name in ("offline-dpo", "grpo"):
        per_round = args.steps // args.rounds
        if name == "offline-dpo":
            cfg = TrainConfig(**common(args, work), method="dpo", dataset=str(work / "offline_pairs.jsonl"),
                              run_dir=str(work / name), method_args={"probe_pairs": 0, "probe_kl_prompts": 0,
                                                                      "eval_on_start": False},
                              max_rows=args.rounds * args.prompts_per_round)
            cfg.eval_rows = 0
        else:  # k completions per prompt, prompts_per_round × rounds prompts in all
            cfg = TrainConfig(**common(args, work), method="grpo", dataset=str(verifiable), run_dir=str(work / name),
                              method_args={"rewards": REWARDS, "num_generations": args.k,
                                           "max_completion_length": args.max_new_tokens,
                                           "temperature": args.temperature})
            cfg.batch_size = args.k * max(1, args.prompts_per_round * args.rounds // args.steps)
            cfg.eval_rows = 0
        cfg.save_steps = per_round
        out["eval"] = [{"round": 0, **final_eval(base_model)}]
        records = []
        for r in range(1, args.rounds + 1):
            cfg.max_steps = per_round * r
            result = train(cfg, resume=r > 1)
            records += [x.to_json() for x in result.records]
            out["eval"].append({"round": r, **adapter_eval(result.run_dir)})
        out["zero_std_groups"] = [x.get("frac_reward_zero_std") for x in records
                                  if x["kind"] == "train" and "frac_reward_zero_std" in x]
    else:
        cfg = TrainConfig(**common(args, work), method=f"onpolicy-{name.split('-')[1]}", dataset=str(verifiable),
                          run_dir=str(work / name), method_args=onpolicy)
        result = train(cfg)
        recs = [x.to_json() for x in result.records]
        out["rounds"] = [{k: x.get(k) for k in ("round", "reward_mean", "reward_std", "sample_accuracy",
                                                "prompts_kept", "pairs", "train_steps", "sample_tokens_per_s")}
                         for x in recs if x["kind"] == "event" and x.get("event") == "round"]
        out["eval"] = [{k: x.get(k) for k in ("round", "accuracy", "eval_length_mean")}
                       for x in recs if x["kind"] == "eval"]
        out["final"] = adapter_eval(result.run_dir)
    out.update(status=result.status, runtime_s=round(time.time() - started, 1), steps=result.summary["steps"])
    (work / f"{name}.json").write_text(json.dumps(out, indent=2))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--rows", type=int, default=600, help="easy arithmetic rows (10%% held out by the loader)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--prompts-per-round", type=int, default=16)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=10)
    p.add_argument("--steps", type=int, default=32, help="total optimizer steps per run")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--eval-rows", type=int, default=48)
    p.add_argument("--runs", default="onpolicy-dpo,onpolicy-aft,offline-dpo,grpo")
    p.add_argument("--work", default="/tmp/onpolicy_bench")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/onpolicy.json"))
    p.add_argument("--one", help=argparse.SUPPRESS)  # child process: run this configuration
    args = p.parse_args()
    work = Path(args.work)
    if args.one:
        run_one(args.one, args, work)
        return 0
    work.mkdir(parents=True, exist_ok=True)
    rows = easy_rows(args.rows)
    (work / "arithmetic_easy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (work / "offline_pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in offline_pairs(rows)))
    names = args.runs.split(",")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    started = time.time()
    procs = {n: subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--one", n], env=env,
                                 stdout=open(work / f"{n}.log", "w"), stderr=subprocess.STDOUT) for n in names}
    codes = {n: pr.wait() for n, pr in procs.items()}
    results = {n: json.loads((work / f"{n}.json").read_text()) if codes[n] == 0 else {"failed": codes[n]}
               for n in names}
    settings = {k: v for k, v in vars(args).items() if k not in ("one", "out", "work")}
    report = {"settings": settings, "wall_s": round(time.time() - started, 1), "results": results}
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
