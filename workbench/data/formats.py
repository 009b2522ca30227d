"""The canonical row shapes, how a row's shape is detected, how a row is checked and
normalised, and how rows convert from one shape to another.

All chat-like fields are conversational (lists of {"role", "content"} messages), the form
TRL applies a chat template to. Plain strings are accepted and wrapped: a prompt becomes one
user message, a completion / chosen / rejected / response one assistant message.
"""
from __future__ import annotations

import json
from collections import deque
from typing import Any, Callable, Iterable

FORMATS: dict[str, tuple[str, ...]] = {
    # format name -> the fields it owns (anything else in a row is an extra column, kept as is)
    "text": ("text",),
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "preference": ("prompt", "chosen", "rejected"),
    "unpaired": ("prompt", "completion", "label"),
    "ranked": ("prompt", "responses", "scores"),
    "verifiable": ("prompt", "answer", "task", "solution"),
}
ROLES = ("system", "user", "assistant")
_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant"}


class RowProblem(Exception):
    """One thing wrong with one row: `field` and what was expected."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def detect(row: dict) -> str | None:
    """The format a row's columns suggest, or None when they fit none."""
    keys = {k for k, v in row.items() if v is not None}
    if "messages" in keys or "conversations" in keys:
        return "messages"
    if {"chosen", "rejected"} <= keys:
        return "preference"
    if {"responses", "scores"} <= keys:
        return "ranked"
    if {"completion", "label"} <= keys:
        return "unpaired"
    if {"prompt", "completion"} <= keys:
        return "prompt_completion"
    if {"prompt", "answer"} <= keys:
        return "verifiable"
    if "text" in keys:
        return "text"
    return None


def describe_expected() -> str:
    return ("text | messages | prompt+completion | prompt+chosen+rejected | "
            "prompt+completion+label | prompt+responses+scores | prompt+answer")


# ---------------------------------------------------------------- field normalisers

def _maybe_json(value: Any, *, conversation: bool = False) -> Any:
    # CSV cells hold lists and conversations as JSON text. A plain string that merely looks
    # like JSON ("[1, 2]" as a prompt) stays a string unless it parses to what the field needs.
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if conversation:
            msgs = [parsed] if isinstance(parsed, dict) else parsed
            ok = isinstance(msgs, list) and msgs and all(
                isinstance(m, dict) and ({"role", "from"} & m.keys()) for m in msgs)
            return parsed if ok else value
        if isinstance(parsed, list):
            return parsed
    return value


def _conversation(field: str, value: Any, default_role: str, *, assistant_only: bool = False) -> list[dict]:
    value = _maybe_json(value, conversation=True)
    if isinstance(value, str):
        if not value.strip():
            raise RowProblem(field, f"{field!r} is empty")
        value = [{"role": default_role, "content": value}]
    elif isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowProblem(field, f"{field!r} is {type(value).__name__}; expected a string or a list of messages")
    if not value:
        raise RowProblem(field, f"{field!r} is empty")
    out = []
    for i, msg in enumerate(value):
        where = f"{field!r}[{i}]"
        if not isinstance(msg, dict):
            raise RowProblem(field, f"{where} is {type(msg).__name__}; expected a message {{'role', 'content'}}")
        role = msg.get("role", msg.get("from"))
        content = msg.get("content", msg.get("value"))
        role = _ROLE_ALIASES.get(role, role)
        if role not in ROLES:
            raise RowProblem(field, f"{where} has role {role!r}; expected one of {', '.join(ROLES)}")
        if assistant_only and role != "assistant":
            raise RowProblem(field, f"{where} has role {role!r}; expected 'assistant'")
        if not isinstance(content, str):
            raise RowProblem(field, f"{where} content is {type(content).__name__}; expected a string")
        if not content.strip():
            raise RowProblem(field, f"{where} content is empty")
        out.append({"role": role, "content": content})
    return out


def _string(field: str, value: Any, *, allow_empty: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RowProblem(field, f"{field!r} is {type(value).__name__}; expected a string")
    value = str(value) if not isinstance(value, str) else value
    if not allow_empty and not value.strip():
        raise RowProblem(field, f"{field!r} is empty")
    return value


def _label(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise RowProblem("label", f"'label' is {value!r}; expected true or false")


def _scores(value: Any, n: int) -> list[float]:
    value = _maybe_json(value)
    if not isinstance(value, list) or not all(
            isinstance(s, (int, float)) and not isinstance(s, bool) for s in value):
        raise RowProblem("scores", f"'scores' is {value!r}; expected a list of numbers")
    if len(value) != n:
        raise RowProblem("scores", f"'scores' has {len(value)} values but 'responses' has {n}")
    return [float(s) for s in value]


def _require(row: dict, fields: Iterable[str]) -> None:
    for f in fields:
        if row.get(f) is None:
            raise RowProblem(f, f"{f!r} is missing")


def normalise(row: dict, fmt: str) -> dict:
    """Check one row against `fmt` and return it in canonical form (extras kept).
    Raises RowProblem naming the field and what was expected."""
    row = dict(row)
    # trl is imported only here: it pulls in transformers, seconds the common path skips.
    if fmt == "messages" and "conversations" in row:
        from trl.data_utils import maybe_convert_to_chatml
        row = maybe_convert_to_chatml(row)
    if fmt == "preference" and row.get("prompt") is None:
        _require(row, ("chosen", "rejected"))
        # Implicit prompt: chosen and rejected are whole conversations sharing a prefix.
        from trl.data_utils import extract_prompt
        chosen = _conversation("chosen", row["chosen"], "assistant")
        rejected = _conversation("rejected", row["rejected"], "assistant")
        row.update(extract_prompt({"chosen": chosen, "rejected": rejected}))
        if not row["prompt"]:
            raise RowProblem("prompt", "'prompt' is missing and 'chosen'/'rejected' share no leading turns")
    _require(row, [f for f in FORMATS[fmt] if f not in ("task", "solution")])

    if fmt == "text":
        row["text"] = _string("text", row["text"])
    elif fmt == "messages":
        msgs = _conversation("messages", row["messages"], "user")
        if not any(m["role"] == "assistant" for m in msgs):
            raise RowProblem("messages", "'messages' has no assistant turn")
        row["messages"] = msgs
    else:
        row["prompt"] = _conversation("prompt", row["prompt"], "user")
        if fmt in ("prompt_completion", "unpaired"):
            row["completion"] = _conversation("completion", row["completion"], "assistant", assistant_only=True)
        if fmt == "unpaired":
            row["label"] = _label(row["label"])
        if fmt == "preference":
            row["chosen"] = _conversation("chosen", row["chosen"], "assistant", assistant_only=True)
            row["rejected"] = _conversation("rejected", row["rejected"], "assistant", assistant_only=True)
            if row["chosen"] == row["rejected"]:  # zero preference signal: every pairwise loss is flat on it
                raise RowProblem("rejected", "'chosen' and 'rejected' are the same response, so the pair "
                                             "prefers nothing")
        if fmt == "ranked":
            responses = _maybe_json(row["responses"])
            if not isinstance(responses, list) or len(responses) < 2:
                raise RowProblem("responses", "'responses' must be a list of at least 2 responses")
            row["responses"] = [_conversation(f"responses[{i}]", r, "assistant", assistant_only=True)
                                for i, r in enumerate(responses)]
            row["scores"] = _scores(row["scores"], len(responses))
        if fmt == "verifiable":
            row["answer"] = _string("answer", row["answer"])
            row["task"] = _string("task", row.get("task") or "custom")
            row["solution"] = _string("solution", row.get("solution") or "", allow_empty=True)
    return row


# ---------------------------------------------------------------- conversions

def _extras(row: dict, fmt: str) -> dict:
    return {k: v for k, v in row.items() if k not in FORMATS[fmt]}


def _messages_to_pc(row):
    msgs = row["messages"]
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    if last == 0:
        raise RowProblem("messages", "'messages' has nothing before its last assistant turn to use as a prompt")
    yield {**_extras(row, "messages"), "prompt": msgs[:last], "completion": [msgs[last]]}


def _pc_to_messages(row):
    yield {**_extras(row, "prompt_completion"), "messages": row["prompt"] + row["completion"]}


def _preference_to_pc(row):
    yield {**_extras(row, "preference"), "prompt": row["prompt"], "completion": row["chosen"]}


def _preference_to_unpaired(row):
    extras = _extras(row, "preference")
    yield {**extras, "prompt": row["prompt"], "completion": row["chosen"], "label": True}
    yield {**extras, "prompt": row["prompt"], "completion": row["rejected"], "label": False}


def _ranked_to_preference(row):
    scores = row["scores"]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    worst = min(range(len(scores)), key=lambda i: (scores[i], -i))
    if scores[best] == scores[worst]:
        return  # all tied: no preference to express
    yield {**_extras(row, "ranked"), "prompt": row["prompt"],
           "chosen": row["responses"][best], "rejected": row["responses"][worst]}


def _preference_to_ranked(row):
    # A pair is a list of two; listwise objectives (LiPO, AFT) reduce to pairwise on it.
    yield {**_extras(row, "preference"), "prompt": row["prompt"],
           "responses": [row["chosen"], row["rejected"]], "scores": [1.0, 0.0]}


def _verifiable_to_pc(row):
    text = row.get("solution") or row["answer"]
    yield {**_extras(row, "verifiable"), "prompt": row["prompt"],
           "completion": [{"role": "assistant", "content": text}]}


def _unpaired_to_pc(row):
    if row["label"]:  # only the desirable completions are worth imitating
        yield {**_extras(row, "unpaired"), "prompt": row["prompt"], "completion": row["completion"]}


CONVERSIONS: dict[tuple[str, str], Callable[[dict], Iterable[dict]]] = {
    ("messages", "prompt_completion"): _messages_to_pc,
    ("prompt_completion", "messages"): _pc_to_messages,
    ("preference", "prompt_completion"): _preference_to_pc,
    ("preference", "unpaired"): _preference_to_unpaired,
    ("ranked", "preference"): _ranked_to_preference,
    ("preference", "ranked"): _preference_to_ranked,
    ("verifiable", "prompt_completion"): _verifiable_to_pc,
    ("unpaired", "prompt_completion"): _unpaired_to_pc,
}


def conversion_path(src: str, dst: str) -> list[tuple[str, str]] | None:
    """Shortest chain of conversions from src to dst ([] if equal), None if impossible."""
    if src == dst:
        return []
    queue, seen = deque([(src, [])]), {src}
    while queue:
        fmt, path = queue.popleft()
        for (a, b) in CONVERSIONS:
            if a == fmt and b not in seen:
                if b == dst:
                    return path + [(a, b)]
                seen.add(b)
                queue.append((b, path + [(a, b)]))
    return None


def convert_row(row: dict, path: list[tuple[str, str]]) -> list[dict]:
    rows = [row]
    for step in path:
        rows = [out for r in rows for out in CONVERSIONS[step](r)]
    return rows
