"""`workbench chat M1 M2 …`: a terminal side-by-side. Each line read from stdin is a user
turn; every contestant streams its reply in turn (multi-turn, with each model's chat
template). Works with a pipe: `printf 'Hi\\nWhy?\\n' | workbench chat tiny-llama urial:tiny-llama`.
Commands: /clear (new conversation), /quit (or /exit)."""
from __future__ import annotations

import re
import shutil
import sys
import textwrap

from ..errors import WorkbenchError


def add_parser(sub):
    p = sub.add_parser(
        "chat", help="terminal side-by-side chat with 1-4 models / strategies (reads stdin)",
        description="Chat with several contestants at once. A contestant is MODEL or MODEL@STRATEGY "
                    "(model: built-in name, hub id, local dir, .gguf file, run directory, urial:<model>). Each stdin "
                    "line is a user turn; /clear starts over, /quit ends.")
    p.add_argument("contestants", nargs="+", help="MODEL or MODEL@STRATEGY (1-4)")
    p.add_argument("--strategy", default="plain", help="strategy for contestants without @STRATEGY")
    p.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE",
                   help="strategy knob for every contestant whose strategy has it")
    p.add_argument("--max-new-tokens", type=int, default=None, help="shorthand for --set max_new_tokens=N")
    p.add_argument("--system", default=None, help="system prompt for every contestant")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--columns", choices=["auto", "yes", "no"], default="auto",
                   help="after each turn, print the replies in columns (auto: when stdout is a terminal)")
    p.set_defaults(func=run)


def split_contestant(text: str, default: str) -> tuple[str, str]:
    model, sep, strategy = text.rpartition("@")
    return (model, strategy) if sep and model else (text, default)


def build_contestants(specs: list[str], default: str, knobs: dict, precision: str = "auto"):
    """(model, strategy) per contestant → Decoders; each --set knob goes to the strategies
    that have it, and a knob none of them has is an error."""
    import dataclasses

    from ..decoding import Decoder, get_strategy, strategy_config

    if not 1 <= len(specs) <= 4:
        raise WorkbenchError(f"name 1 to 4 contestants, got {len(specs)}")
    pairs = [split_contestant(s, default) for s in specs]
    fields = {}
    for _, strategy in pairs:
        fields[strategy] = {f.name for f in dataclasses.fields(get_strategy(strategy).config_cls)}
    unknown = [k for k in knobs if not any(k in f for f in fields.values())]
    if unknown:
        raise WorkbenchError(f"--set {unknown[0]}: no contestant's strategy has this knob "
                             f"({', '.join(sorted(set().union(*fields.values())))})")
    own = [{k: v for k, v in knobs.items() if k in fields[s]} for _, s in pairs]
    for (_, s), k in zip(pairs, own):
        strategy_config(s, k)           # every knob checked before any model loads
    return [Decoder(m, s, k, precision=precision) for (m, s), k in zip(pairs, own)]


def columns_text(names: list[str], replies: list[str], width: int | None = None) -> str:
    width = width or shutil.get_terminal_size((120, 20)).columns
    col = max(20, (width - 3 * (len(names) - 1)) // len(names))
    wrapped = [[n[:col].ljust(col), "-" * col] + [ln.ljust(col) for para in (r or "").splitlines() or [""]
                                                  for ln in (textwrap.wrap(para, col) or [""])]
               for n, r in zip(names, replies)]
    height = max(len(w) for w in wrapped)
    rows = [" | ".join(w[i] if i < len(w) else " " * col for w in wrapped) for i in range(height)]
    return "\n".join(r.rstrip() for r in rows)


def run(args) -> int:
    from ._sets import parse_sets

    knobs = parse_sets(args.set, "strategy.")
    if args.max_new_tokens is not None:
        knobs["max_new_tokens"] = args.max_new_tokens
    decoders = build_contestants(args.contestants, args.strategy, knobs, args.precision)
    names = [f"[{i + 1}] {d.name}" for i, d in enumerate(decoders)]
    interactive = sys.stdin.isatty()
    show_columns = args.columns == "yes" or (args.columns == "auto" and sys.stdout.isatty() and len(decoders) > 1)
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: list[list[dict]] = [list(system) for _ in decoders]
    turns = 0
    if interactive:
        print(f"chatting with {', '.join(names)}; /clear starts over, /quit ends", file=sys.stderr)
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if re.fullmatch(r"/\w+", text) and text != "/clear":  # a mistyped command is not a user turn
            print(f"unknown command {text}: /clear starts over, /quit ends (a turn that is one /word "
                  "is read as a command)", file=sys.stderr, flush=True)
            continue
        if text == "/clear":
            history = [list(system) for _ in decoders]
            print("(conversation cleared)", flush=True)
            continue
        print(f"you: {text}", flush=True)
        replies = []
        for name, d, h in zip(names, decoders, history):
            h.append({"role": "user", "content": text})
            print(f"{name}: ", end="", flush=True)
            for piece in d.stream(h):
                print(piece, end="", flush=True)
            print(flush=True)
            reply = d.last.text
            h.append({"role": "assistant", "content": reply})
            replies.append(reply)
        if show_columns:
            print(columns_text(names, replies), flush=True)
        turns += 1
    print(f"{turns} turn(s) with {len(decoders)} contestant(s)", file=sys.stderr)
    return 0
