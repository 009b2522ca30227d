"""`workbench shift`: token-distribution shift of a tuned model against its base."""
from __future__ import annotations

import json

from ._paths import check_output_file, os_error_text


def add_parser(sub):
    p = sub.add_parser(
        "shift", help="token-distribution shift (URIAL): where a tuned model departs from its base",
        description="Decode prompts with the tuned model, rank every output token under the base "
                    "model: rank 1 unshifted, 2-3 marginal, >3 shifted. Writes an HTML report "
                    "and JSON stats.")
    p.add_argument("--base", required=True, help="base model: built-in name, hub id, local dir, .gguf file or run dir")
    p.add_argument("--tuned", required=True,
                   help="tuned model: run directory, model name/dir, or urial:<model> "
                        "(the model with an in-context alignment prompt)")
    p.add_argument("--prompts", required=True,
                   help="dataset name or a table with answers (its eval split's 'prompt' column), .txt "
                        "file (one prompt a line), .json list, a .jsonl/.csv/.parquet of prompts only, "
                        "or the text of one prompt (a sentence)")
    p.add_argument("--max-prompts", type=int, default=32, help="analyse at most this many prompts (default 32)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens decoded per prompt (default 64)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="prompts decoded together (memory-bound decoding: 16 gave 1.37x the tokens per CPU-s of 8)")
    p.add_argument("--top-k", type=int, default=5, help="base top-k tokens kept per position")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"],
                   help="fp32 (default) gives the same numbers on every CPU; bf16/auto are faster where the CPU "
                        "has bf16, but change the decode itself and so the split")
    p.add_argument("--out", default="shift_report.html", help="HTML report path")
    p.add_argument("--json", default=None, help="JSON stats path (default: next to --out)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..analysis import token_shift
    from ..errors import WorkbenchError
    from .generate import is_literal_prompt

    if args.max_prompts is not None and args.max_prompts < 1:
        raise WorkbenchError(f"--max-prompts must be ≥ 1, got {args.max_prompts}")
    if args.max_new_tokens < 1:
        raise WorkbenchError(f"--max-new-tokens must be ≥ 1, got {args.max_new_tokens}")
    if args.batch_size < 1:
        raise WorkbenchError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    if args.top_k < 1:
        raise WorkbenchError(f"--top-k must be ≥ 1, got {args.top_k}")
    # Output paths first: a bad --out must not cost the whole analysis.
    inputs = (args.prompts,)  # a prompts file must not be written over (e.g. prompts.json beside --out prompts.html)
    out = check_output_file(args.out, "--out", inputs)
    json_path = check_output_file(args.json, "--json", inputs) if args.json else out.with_suffix(".json")
    if not args.json:
        check_output_file(json_path, "--json (default, beside --out)", inputs)
    # A sentence is the prompt itself, as for generate and chat; one word must name a dataset or file.
    literal = is_literal_prompt(args.prompts) and any(c.isspace() for c in args.prompts.strip())
    prompts = [args.prompts] if literal else args.prompts
    result = token_shift(args.base, args.tuned, prompts, max_prompts=args.max_prompts,
                         max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                         top_k=args.top_k, greedy=not args.sample, precision=args.precision)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        result.to_html(out)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        stats = result.to_json(json_path)
    except OSError as e:
        raise WorkbenchError(f"cannot write the report ({os_error_text(e)})") from None
    fr = ", ".join(f"{k} {stats[k]:.1%}" for k in ("unshifted", "marginal", "shifted"))
    top = " ".join(json.dumps(t["token"]) for t in stats["top_shifted"][:10])
    print(f"{stats['n_tokens']} tokens from {stats['n_prompts']} prompts: {fr}")
    print(f"mean KL {stats['mean_kl']:.4f}; top shifted: {top or '-'}")
    print(f"{stats['tokens_per_s']:.0f} analysed tokens/s ({stats['tokens_per_s_end_to_end']:.0f} "
          f"end to end); wrote {out} and {json_path}")
    return 0
