"""`workbench generate`: replies from any model source under any decoding strategy."""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

from ..errors import UnknownNameError, WorkbenchError, close_match
from ._paths import check_output_file, os_error_text
from ._sets import parse_sets


def add_parser(sub):
    p = sub.add_parser(
        "generate", help="generate replies with a decoding strategy (URIAL, best-of-N, proxy-tuning, …)",
        description="Decode prompts with a model (built-in name, hub id, local dir, .gguf file, run directory, "
                    "urial:<model>) under a decoding strategy. Knobs: --set KNOB=VALUE (see --list-strategies). "
                    "Replies stream to stdout; --out writes one JSON object per prompt.")
    p.add_argument("--model",
                   help="model: built-in name, hub id, local dir, .gguf file, run directory or urial:<model>")
    p.add_argument("--strategy", default="plain", help="decoding strategy (default plain)")
    p.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE",
                   help="strategy knob, e.g. --set n=4 --set reward=length (YAML values)")
    p.add_argument("--config", help="YAML file of strategy knobs (--set wins)")
    p.add_argument("--prompts", help='dataset name (eval split), .txt (one prompt a line) / .json / '
                                     'prompts-only .jsonl file, or "text"')
    p.add_argument("--max-prompts", type=int, default=None, help="use at most this many prompts")
    p.add_argument("--batch-size", type=int, default=8, help="prompts decoded together when not streaming")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--stream", choices=["auto", "yes", "no"], default="auto",
                   help="stream each reply as it is decoded (auto: one prompt, or a terminal)")
    p.add_argument("--out", help="JSONL file: one object per prompt (prompt, output, strategy info)")
    p.add_argument("--list-strategies", action="store_true", help="list strategies and their knobs, then exit")
    p.set_defaults(func=run)


def strategy_knobs(args) -> dict:
    base = {}
    if getattr(args, "config", None):
        from ..config import read_yaml_mapping
        base = read_yaml_mapping(args.config, "strategy config file", "strategy knobs")
    return parse_sets(args.set, "strategy.", base)


def list_strategies_text() -> str:
    from ..config import field_help
    from ..decoding import list_strategies

    lines = []
    for s in list_strategies():
        lines.append(f"{s.name}: {s.summary}")
        for name, default, help_text in field_help(s.config_cls):
            lines.append(f"    {name} = {default!r}  {help_text}")
    return "\n".join(lines)


_DATASET_LIKE = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def resolve_prompts(text: str, max_prompts: int | None):
    """--prompts: an existing file, a dataset name (built-in or org/name), else literal text."""
    from ..data import list_datasets
    from ..decoding.generator import load_prompts

    if not text or not text.strip():
        raise WorkbenchError("--prompts: empty prompt (give text, a file or a dataset name)")
    if _names_a_missing_file(text):  # a mistyped path was decoded as if it were the prompt
        raise WorkbenchError(f"--prompts {text}: no such file or directory")
    if not is_literal_prompt(text):
        return load_prompts(text, max_prompts=max_prompts)
    builtin = [d.name for d in list_datasets()]
    if not any(c.isspace() for c in text) and close_match(text, builtin):  # a mistyped name, not a prompt
        raise UnknownNameError("dataset", text, builtin)
    return [[{"role": "user", "content": text}]], {}


_PROMPT_FILES = (".txt", ".md", ".json", ".jsonl", ".csv", ".parquet")


def _names_a_missing_file(text: str) -> bool:
    """One word that can only be a path (./x, ~/x, /x, a/b/c, or a prompts-file name), and
    nothing is there. A hub id (org/name) and any text with a space stay what they were."""
    if any(c.isspace() for c in text) or Path(text).expanduser().exists():
        return False
    return text.startswith(("./", "../", "~/", "/")) or text.count("/") > 1 or text.lower().endswith(_PROMPT_FILES)


def is_literal_prompt(text: str) -> bool:
    """--prompts TEXT is the prompt itself, not an existing file, a built-in dataset or a hub id."""
    from ..data import list_datasets

    return not (Path(text).expanduser().exists() or text in {d.name for d in list_datasets()}
                or ("/" in text and _DATASET_LIKE.match(text)))


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args) -> int:
    from ..decoding import Decoder, get_strategy, strategy_config

    if args.list_strategies:
        print(list_strategies_text())
        return 0
    if not args.model:
        raise WorkbenchError("--model is required (built-in name, hub id, local dir or run directory)")
    if args.prompts is None:
        raise WorkbenchError("--prompts is required (text, a .txt/.json file or a dataset name)")
    if args.batch_size < 1:
        raise WorkbenchError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_prompts is not None and args.max_prompts < 1:
        raise WorkbenchError(f"--max-prompts must be >= 1, got {args.max_prompts}")
    get_strategy(args.strategy)
    knobs = strategy_knobs(args)
    strategy_config(args.strategy, knobs)                 # bad knobs: one line, nothing loaded
    out = check_output_file(args.out, "--out", (args.prompts,)) if args.out else None
    msgs, columns = resolve_prompts(args.prompts, args.max_prompts)
    decoder = Decoder(args.model, args.strategy, knobs, precision=args.precision)
    stream = args.stream == "yes" or (args.stream == "auto" and (len(msgs) == 1 or sys.stdout.isatty()))
    gens = []
    if stream:
        for i, m in enumerate(msgs):
            print(f">>> {m[-1]['content']}", flush=True)
            for piece in decoder.stream(m, columns={k: [v[i]] for k, v in columns.items()}):
                print(piece, end="", flush=True)
            print(flush=True)
            gens.append(decoder.last)
    else:
        gens = decoder.generate(msgs, columns=columns, batch_size=args.batch_size)
        for g in gens:
            print(f">>> {g.prompt}\n{g.text}")
    rewards = [g.info["reward"] for g in gens if isinstance(g.info.get("reward"), (int, float))]
    tail = f"; mean reward {sum(rewards) / len(rewards):.3f}" if rewards else ""
    print(f"{len(gens)} replies, {sum(len(g.token_ids) for g in gens)} tokens ({decoder.name}){tail}",
          file=sys.stderr)
    if out is not None:
        rows = [{"model": args.model, "strategy": args.strategy, "knobs": knobs, **g.to_json()} for g in gens]
        try:
            write_jsonl_atomic(out, rows)
        except OSError as e:
            raise WorkbenchError(f"cannot write {out} ({os_error_text(e)})") from None
        print(f"wrote {out}", file=sys.stderr)
    return 0
