"""Turn any canonical dataset shape into (instruction, response) text pairs.

Shapes (as produced by `workbench.data.load`): prompt_completion {"prompt", "completion"},
messages {"messages"}, text {"text"}, preference {"prompt", "chosen", "rejected"}.
Conversational fields are lists of {"role", "content"}; plain strings also work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import WorkbenchError

CATEGORY_COLUMNS = ("category", "task", "task_type")
RESPONSE_FALLBACKS = ("solution", "answer", "response")


@dataclass
class Pool:
    instructions: list[str]
    responses: list[str]
    categories: list[str] | None   # task type per row, when the data has such a column
    rows: Any                      # the original dataset (for strategies reading columns)

    def __len__(self) -> int:
        return len(self.responses)

    def texts(self, part: str = "both") -> list[str]:
        """`instruction`, `response` or `both` (joined by a newline) per row."""
        if part == "instruction":  # text-only rows have no instruction: fall back
            return [i or r for i, r in zip(self.instructions, self.responses)]
        if part == "response":
            return list(self.responses)
        if part == "both":
            return [f"{i}\n{r}" if i else r for i, r in zip(self.instructions, self.responses)]
        raise WorkbenchError(f"selection: text part must be instruction, response or both, got {part!r}")


def _content(value, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _content(value.get("content"), where)
    if isinstance(value, list):
        return "\n".join(_content(m, where) for m in value if m is not None)
    raise WorkbenchError(f"{where}: expected text or a list of messages, got {type(value).__name__}")


def pair_of(row: dict, where: str = "row") -> tuple[str, str]:
    """(instruction, response) of one row in any canonical shape."""
    if "messages" in row:
        msgs = row["messages"] or []
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        if last is None:
            return _content(msgs, where), ""
        return _content(msgs[:last], where), _content(msgs[last], where)
    if "prompt" in row and "completion" in row:
        return _content(row["prompt"], where), _content(row["completion"], where)
    if "prompt" in row and "chosen" in row:
        chosen = row["chosen"]
        if isinstance(chosen, list) and chosen and chosen[-1].get("role") == "assistant":
            chosen = chosen[-1]
        return _content(row["prompt"], where), _content(chosen, where)
    if "text" in row:
        return "", _content(row["text"], where)
    if "prompt" in row:  # verifiable / ranked rows: the reference solution stands for the response
        key = next((c for c in RESPONSE_FALLBACKS if row.get(c) is not None), None)
        return _content(row["prompt"], where), "" if key is None else _content(row[key], where)
    raise WorkbenchError(f"{where}: cannot find instruction/response columns in {sorted(row)}; "
                         "expected messages, prompt (+completion/chosen/solution) or text")


def to_pool(dataset) -> Pool:
    """A `datasets.Dataset` or list of row dicts → a Pool of text pairs."""
    if isinstance(dataset, (list, tuple)):
        rows = list(dataset)
        if rows and not isinstance(rows[0], dict):
            raise WorkbenchError("selection: a list pool must hold row dicts (use a Dataset "
                                 "or [{'text': ...}, ...])")
        columns = set(rows[0]) if rows else set()
    elif hasattr(dataset, "column_names") and hasattr(dataset, "select"):
        rows, columns = dataset, set(dataset.column_names)
    else:
        named = (f" ({dataset!r}: load a dataset by name with workbench.data.load({dataset!r}))"
                 if isinstance(dataset, str) else "")
        raise WorkbenchError(f"selection: expected a datasets.Dataset or a list of row dicts, "
                             f"got {type(dataset).__name__}{named}")
    if len(rows) == 0:
        raise WorkbenchError("selection: the dataset is empty")
    instructions, responses = [], []
    records = rows.to_list() if hasattr(rows, "to_list") else rows  # arrow → python at once: fast
    for i, row in enumerate(records):
        ins, res = pair_of(row, where=f"selection: row {i}")
        instructions.append(ins)
        responses.append(res)
    cat_col = next((c for c in CATEGORY_COLUMNS if c in columns), None)
    categories = None if cat_col is None else [str(r[cat_col]) for r in records]
    return Pool(instructions, responses, categories, rows)


def target_texts(target, where: str = "selection: target") -> list[str]:
    """The `target` knob: a list of strings, or a dataset source / Dataset → its texts."""
    if target is None:
        raise WorkbenchError(f"{where}: this strategy needs a target (a dataset source or a list of strings)")
    if isinstance(target, (list, tuple)) and all(isinstance(t, str) for t in target):
        texts = list(target)
    elif isinstance(target, str):
        texts = to_pool(load_source(target)).texts("both")
    else:
        texts = to_pool(target).texts("both")
    if not texts:
        raise WorkbenchError(f"{where}: the target set is empty")
    return texts


def load_source(source: str):
    """Load a dataset source with `workbench.data.load` (built-in name, file or hub id)."""
    from ..data import load  # imported late: the data package pulls in more than we need

    return load(source)
