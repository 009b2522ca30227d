"""Prompts for the probes: normalise what the user passes, render it with a model's chat
template, and the URIAL-style in-context alignment prompt."""
from __future__ import annotations

from pathlib import Path

# URIAL's prompt lives in workbench.decoding.urial (re-exported here for compatibility).
from ..decoding.urial import URIAL_EXAMPLES, URIAL_SYSTEM, urial_messages, urial_plain  # noqa: F401
from ..errors import WorkbenchError

Messages = list[dict]

def normalise_prompts(prompts, *, max_prompts: int | None = None) -> list[Messages]:
    """str | list[str] | list[messages] | dataset name | file → list of chat-message lists (the
    user turn(s) only). Files: .txt/.md (a prompt a line), .json (a list), or a .jsonl/.csv/.parquet
    table of prompts only (all rows); a table with answers is a dataset (its eval split)."""
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
    if path.is_file() and path.suffix.lower() in (".jsonl", ".csv", ".parquet"):
        rows = _prompt_rows(path)
        if rows is not None:
            return rows
    try:
        from ..data import load
    except ImportError as e:
        raise WorkbenchError(f"prompts {source!r}: not a .txt/.json file and the dataset "
                             f"loader is unavailable ({e})") from e
    try:
        ds = load(source, format="prompt_completion", split="eval", max_rows=max_prompts)
    except WorkbenchError as e:
        if any(c.isspace() for c in source.strip()):  # token_shift("Explain gravity.") meant the text itself
            raise WorkbenchError(f"{e} (to use the text itself as the prompt, pass a list: [{source!r}])") from None
        documents = _documents(source, max_prompts)
        if documents is None:
            raise
        from ..data.openings import document_openings

        return document_openings(documents)  # raw text: its held-out documents' openings
    if "prompt" not in ds.column_names:
        raise WorkbenchError(f"dataset {source!r} has no 'prompt' column")
    return list(ds["prompt"])


def _documents(source: str, max_prompts: int | None) -> list[str] | None:
    """A raw-text dataset's eval documents, or None when `source` is not one."""
    from ..data import load

    try:
        return list(load(source, format="text", split="eval", max_rows=max_prompts)["text"])
    except WorkbenchError:
        return None


def _prompt_rows(path: Path) -> list | None:
    """Every row of a local table that holds prompts only — a `prompt` column without answers,
    or conversations ending on a user turn — as a prompt. None for a training dataset (rows with
    answers), whose eval split is used like a named dataset's: the prompts tuning did not see."""
    from ..data.formats import RowProblem, _conversation, detect
    from ..data.readers import read_path

    rows = read_path(path).rows
    if not rows or not all(isinstance(r, dict) for r in rows):
        return None
    prompts = []
    for i, row in enumerate(rows, 1):
        fmt = detect(row)
        if fmt == "messages":
            field = "messages" if row.get("messages") is not None else "conversations"
        elif fmt is None and row.get("prompt") is not None:
            field = "prompt"
        else:
            return None  # a row with answers (or no prompt at all): a dataset, not a prompts file
        try:
            msgs = _conversation(field, row[field], "user")
        except RowProblem as e:
            raise WorkbenchError(f"prompts {path} row {i}: {e}") from None
        if msgs[-1]["role"] == "assistant":
            return None  # a conversation with its answer: training data
        prompts.append(msgs)
    return prompts


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
            messages = urial_messages(messages)
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not urial:
        return _plain_text(messages)
    return urial_plain(messages)


def encode(tok, texts: list[str], *, templated: bool) -> list[list[int]]:
    """Token ids per text. A rendered chat template already holds its special tokens."""
    return tok(texts, add_special_tokens=not templated)["input_ids"]
