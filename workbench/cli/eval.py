"""`workbench eval`: lm-evaluation-harness on one or more models or runs."""
from __future__ import annotations

import sys


def add_parser(sub):
    from ..evaluation.config import ALIASES, BUILTIN_TASKS

    p = sub.add_parser(
        "eval", help="evaluate models or runs with lm-evaluation-harness (built-in offline tasks or hub tasks)",
        description="Run EleutherAI's lm-evaluation-harness on each model in memory. Built-in tasks run "
                    f"offline: {', '.join(BUILTIN_TASKS)} (aliases: {', '.join(ALIASES)}). Any other "
                    "lm-eval task (hellaswag, arc_easy, gsm8k, mmlu_*) downloads its data from the hub. "
                    "A run directory gets eval/<task>.json and records in its metrics.jsonl; other "
                    "models' results go under --out.")
    p.add_argument("models", nargs="+", metavar="MODEL_OR_RUN",
                   help="built-in model name, hub id, local model dir, .gguf file, run directory or urial:<model>")
    p.add_argument("--tasks", required=True, help="comma-separated task names, e.g. wb_arithmetic,wb_preferences")
    p.add_argument("--limit", type=int, default=None, help="at most N examples per task (default: all)")
    p.add_argument("--out", default=None, help="folder for results of models that are not run directories, "
                                               "and the summary table (summary.json, summary.md)")
    p.add_argument("--batch-size", type=int, default=8, help="requests per forward pass (default 8)")
    p.add_argument("--allow-code-execution", action="store_true",
                   help="run model-written code (HumanEval) in a limited subprocess; required by code tasks")
    p.add_argument("--chat-template", default="auto", choices=["auto", "on", "off"],
                   help="apply the tokenizer's chat template (default auto: when it has one)")
    p.add_argument("--num-fewshot", type=int, default=None, help="few-shot examples for hub tasks")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--all-metrics", action="store_true", help="print every metric, not just each task's first")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import WorkbenchError
    from ..evaluation import EvalConfig
    from ..evaluation.api import evaluate

    if args.limit is not None and args.limit < 1:
        raise WorkbenchError(f"--limit must be ≥ 1, got {args.limit}")
    cfg = EvalConfig(tasks=args.tasks.split(","), limit=args.limit, batch_size=args.batch_size,
                     allow_code_execution=args.allow_code_execution, chat_template=args.chat_template,
                     num_fewshot=args.num_fewshot, seed=args.seed)

    def progress(done, total, label):
        print(f"[{done}/{total}] {label}", file=sys.stderr, flush=True)

    result = evaluate(args.models, config=cfg, out=args.out, progress=progress)
    table = result.table(all_metrics=args.all_metrics)
    if len(args.models) > 1 and not args.all_metrics:
        print(result.to_markdown())
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if cfg.limit is not None:
        print(f"(limit: {cfg.limit} examples per task)")
    for path in result.written:
        print(f"wrote {path}")
    return 0
