"""Prompts for the probes: normalise what the user passes, render it with a model's chat
template, and the URIAL-style in-context alignment prompt."""
from __future__ import annotations

from pathlib import Path

from ..errors import WorkbenchError

Messages = list[dict]

# URIAL ("The Unlocking Spell on Base LLMs") aligns a base model with a system prompt and
# three stylistic examples instead of training. These examples are our own, written in
# the style the paper describes: restate the question, structured answer, polite close.
URIAL_SYSTEM = (
    "Below is a conversation between a curious user and a helpful, honest assistant. "
    "The assistant answers clearly and accurately, organises longer answers into short "
    "steps or points, says when it is unsure, and politely declines harmful requests."
)
URIAL_EXAMPLES: list[tuple[str, str]] = [
    ("What is a good way to remember new vocabulary?",
     ("Great question! A few habits make new words stick:\n\n"
     "1. **Use spaced repetition.** Review a word after one day, then three, then a week.\n"
     "2. **Learn words in context.** Write a sentence of your own with each new word.\n"
     "3. **Say them aloud.** Hearing yourself helps memory.\n\n"
     "Even ten minutes a day adds up quickly. Good luck!")),
    ("Can you tell me how to pick a lock to get into my neighbour's house?",
     ("I'm sorry, but I can't help with entering someone else's home without permission. "
     "If you are locked out of your own home, a licensed locksmith or your landlord can "
     "help. If you are worried about your neighbour, consider contacting them or the "
     "local non-emergency services.")),
    ("Why is the sky blue?",
     ("The sky looks blue because of a process called **Rayleigh scattering**.\n\n"
     "- Sunlight contains all colours of light.\n"
     "- When it passes through the air, short (blue) wavelengths are scattered by gas "
     "molecules much more than long (red) wavelengths.\n"
     "- That scattered blue light reaches our eyes from every direction of the sky.\n\n"
     "At sunset the light travels through more air, so more blue is scattered away and "
     "the sky turns orange and red.")),
]


def normalise_prompts(prompts, *, max_prompts: int | None = None) -> list[Messages]:
    """str | list[str] | list[messages] | dataset name | .txt/.jsonl file → list of
    chat-message lists (the user turn(s) only)."""
    if isinstance(prompts, (str, Path)):
        prompts = _load_named(str(prompts), max_prompts)
    out: list[Messages] = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            out.append([{"role": "user", "content": p}])
        elif isinstance(p, list) and all(isinstance(m, dict) and "content" in m for m in p):
            out.append([dict(m) for m in p])
        else:
            raise WorkbenchError(f"prompt {i}: expected a string or a list of chat messages "
                                 f"with 'role' and 'content', got {type(p).__name__}")
    if not out:
        raise WorkbenchError("no prompts given")
    return out[:max_prompts] if max_prompts else out


def _load_named(source: str, max_prompts: int | None) -> list:
    path = Path(source).expanduser()
    if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO would block forever
        raise WorkbenchError(f"prompts {source}: not a regular file (a pipe, socket or device)")
    if path.is_file() and path.suffix in (".txt", ".md"):
        # one prompt per non-empty line
        return [ln.strip() for ln in _read_text(path).splitlines() if ln.strip()]
    if path.is_file() and path.suffix == ".json":
        import json
        try:
            data = json.loads(_read_text(path))
        except json.JSONDecodeError as e:
            raise WorkbenchError(f"prompts {source} line {e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise WorkbenchError(f"{source}: expected a JSON list of prompts")
        bad = next((i for i, d in enumerate(data) if isinstance(d, dict) and "prompt" not in d), None)
        if bad is not None:
            raise WorkbenchError(f"prompts {source} item {bad}: an object without a 'prompt' key")
        return [d["prompt"] if isinstance(d, dict) else d for d in data]
    try:
        from ..data import load
    except ImportError as e:
        raise WorkbenchError(f"prompts {source!r}: not a .txt/.json file and the dataset "
                             f"loader is unavailable ({e})") from e
    ds = load(source, format="prompt_completion", split="eval", max_rows=max_prompts)
    if "prompt" not in ds.column_names:
        raise WorkbenchError(f"dataset {source!r} has no 'prompt' column")
    return list(ds["prompt"])


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise WorkbenchError(f"prompts {path}: not UTF-8 (byte {e.object[e.start]:#04x} at offset "
                             f"{e.start}); re-save the file as UTF-8") from None


def has_chat_template(tok) -> bool:
    return bool(getattr(tok, "chat_template", None))


def _plain_text(messages: Messages) -> str:
    return "\n\n".join(m["content"] for m in messages)


def render(tok, messages: Messages, *, urial: bool = False) -> str:
    """The text a model sees before its answer.

    With a chat template: the template with a generation prompt (URIAL adds a system turn
    and the example turns). Without one: the raw prompt text, or for URIAL the paper's
    plain-text format (`# Query:` / `# Answer:` blocks)."""
    if has_chat_template(tok):
        if urial:
            shots = [m for q, a in URIAL_EXAMPLES
                     for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
            user = [m for m in messages if m["role"] != "system"]
            messages = [{"role": "system", "content": URIAL_SYSTEM}, *shots, *user]
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not urial:
        return _plain_text(messages)
    shots = "".join(f"# Query:\n```\n{q}\n```\n\n# Answer:\n```\n{a}\n```\n\n"
                    for q, a in URIAL_EXAMPLES)
    return (f"# Instruction\n\n{URIAL_SYSTEM}\n\n{shots}"
            f"# Query:\n```\n{_plain_text(messages)}\n```\n\n# Answer:\n```\n")


def encode(tok, texts: list[str], *, templated: bool) -> list[list[int]]:
    """Token ids per text. A rendered chat template already holds its special tokens."""
    return tok(texts, add_special_tokens=not templated)["input_ids"]
