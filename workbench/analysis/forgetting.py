"""Forgetting: what fine-tuning cost outside its own data (HFT, S3FT, LIFT measure it this way),
base vs tuned: perplexity on held-out general text, and accuracy (lm-evaluation-harness,
workbench.evaluation) on the verifiable task families the run did not train on."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import WorkbenchError
from .likelihood import completion_logprobs
from .resolve import resolve_pair


def _texts(source, max_texts: int | None) -> list[str]:
    if isinstance(source, str):
        from ..data import load
        ds = load(source, format="text", split="eval", max_rows=max_texts)
        if "text" not in ds.column_names:
            raise WorkbenchError(f"dataset {source!r} has no 'text' column")
        source = ds["text"]
    texts = [t for t in list(source)[:max_texts] if isinstance(t, str) and t.strip()]
    if not texts:
        raise WorkbenchError("no non-empty texts to score")
    return texts


def perplexity(side, texts: list[str], *, max_length: int = 256, batch_size: int = 8,
               precision: str = "auto") -> tuple[float, np.ndarray, np.ndarray]:
    """(corpus perplexity, per-text mean NLL, per-text token counts). Texts are scored
    as plain continuations of BOS, never through a chat template."""
    from .resolve import Side
    plain = Side(side.model, _PlainTok(side.tokenizer), side.name, adapter_off=side.adapter_off)
    lp, n = completion_logprobs(plain, [""] * len(texts), texts, batch_size=batch_size,
                                max_length=max_length, precision=precision)
    return math.exp(-lp.sum() / n.sum()), -lp / np.maximum(n, 1), n


class _PlainTok:
    """The tokenizer with its chat template hidden, so text is scored as text."""
    chat_template = None

    def __init__(self, tok):
        self._tok = tok

    def __getattr__(self, name):
        return getattr(self._tok, name)

    def __call__(self, *a, **k):
        return self._tok(*a, **k)


@dataclass
class ForgettingResult:
    per_text: pd.DataFrame    # text_id, tokens, base_nll, tuned_nll
    base_ppl: float
    tuned_ppl: float
    base_name: str
    tuned_name: str
    # task, metric, n, base, base_stderr, tuned, tuned_stderr, delta (empty: no tasks evaluated)
    accuracy: pd.DataFrame | None = None
    trained_on: tuple[str, ...] = ()   # task families in the run's training data

    def summary(self) -> dict:
        out = {"base_ppl": self.base_ppl, "tuned_ppl": self.tuned_ppl,
               "ppl_ratio": self.tuned_ppl / self.base_ppl, "texts": len(self.per_text),
               "tokens": int(self.per_text["tokens"].sum()),
               "share_texts_worse": float((self.per_text["tuned_nll"] > self.per_text["base_nll"]).mean())}
        if self.accuracy is not None and len(self.accuracy):
            out |= {"tasks": len(self.accuracy), "base_task_acc": float(self.accuracy["base"].mean()),
                    "tuned_task_acc": float(self.accuracy["tuned"].mean()),
                    "task_acc_delta": float(self.accuracy["delta"].mean())}
        return out

    def figure(self):
        from .plots import paired_bar
        return paired_bar(["held-out text"], {self.base_name: [self.base_ppl],
                                              self.tuned_name: [self.tuned_ppl]},
                          "Forgetting: perplexity on held-out text (lower is better)", "perplexity")

    def accuracy_figure(self):
        """Base vs tuned exact match per task family the run did not train on."""
        from .plots import paired_bar
        acc = self.accuracy if self.accuracy is not None else pd.DataFrame(columns=["task", "base", "tuned"])
        return paired_bar(list(acc["task"]), {self.base_name: list(acc["base"]), self.tuned_name: list(acc["tuned"])},
                          "Forgetting: accuracy on task families not trained on (higher is better)", "exact match")


def trained_families(tuned) -> tuple[str, ...]:
    """The verifiable task families in a run's training data (from its config.json)."""
    from .resolve import is_run_dir
    if not isinstance(tuned, (str, Path)) or not is_run_dir(str(tuned).removeprefix("urial:")):
        return ()
    try:
        cfg = json.loads((Path(str(tuned).removeprefix("urial:")).expanduser() / "config.json").read_text())
    except (OSError, ValueError):
        return ()
    from ..data.tasks import KINDS
    dataset = str(cfg.get("dataset") or "")
    if dataset == "tasks":
        return tuple(KINDS)
    return tuple(k for k in KINDS if k == dataset)


def _pick_tasks(tasks, tuned) -> list[str]:
    from ..evaluation.config import FAMILY_TASK
    if tasks is None or tasks == []:
        return []
    if tasks == "auto":
        from .resolve import is_run_dir
        if not isinstance(tuned, (str, Path)) or not is_run_dir(str(tuned).removeprefix("urial:")):
            return []
        trained = set(trained_families(tuned))
        return [t for fam, t in FAMILY_TASK.items() if fam not in trained]
    return [tasks] if isinstance(tasks, str) else list(tasks)


def task_accuracy(b, t, tasks: list[str], limit: int | None, batch_size: int = 8) -> pd.DataFrame:
    """Base and tuned scores (primary metric ± stderr) on harness tasks, one row per task."""
    from ..evaluation import EvalConfig
    from ..evaluation.api import evaluate
    cfg = EvalConfig(tasks=list(tasks), limit=limit, batch_size=batch_size)
    res = evaluate([b, t], config=cfg, write=False)
    half = len(res.scores) // 2
    rows = []
    for sb, st in zip(res.scores[:half], res.scores[half:]):
        rows.append({"task": sb.task, "metric": sb.metric, "n": sb.n, "base": sb.value, "base_stderr": sb.stderr,
                     "tuned": st.value, "tuned_stderr": st.stderr,
                     "delta": (st.value - sb.value) if None not in (st.value, sb.value) else None})
    return pd.DataFrame(rows, columns=["task", "metric", "n", "base", "base_stderr", "tuned", "tuned_stderr", "delta"])


def forgetting(base, tuned, texts="stdlib-docs", *, max_texts: int | None = 64,
               max_length: int = 256, batch_size: int = 8, precision: str = "auto",
               tasks="auto", task_limit: int | None = 20) -> ForgettingResult:
    """Perplexity of base and tuned on the same held-out texts (default: Python stdlib
    docstrings, which neither model was tuned on here), and their accuracy on harness tasks.

    tasks: "auto" — when `tuned` is a run directory, the verifiable task families (wb_*) its
    training data did not contain, else none; a list of task names; or None for none.
    task_limit: examples per task (None: all 200)."""
    eval_tasks = _pick_tasks(tasks, tuned)
    if eval_tasks:
        from ..evaluation import EvalConfig
        EvalConfig(tasks=eval_tasks, limit=task_limit).validate()  # bad names/limits before any model loads
    b, t = resolve_pair(base, tuned)
    docs = _texts(texts, max_texts)
    kw = {"max_length": max_length, "batch_size": batch_size, "precision": precision}
    b_ppl, b_nll, n = perplexity(b, docs, **kw)
    t_ppl, t_nll, _ = perplexity(t, docs, **kw)
    df = pd.DataFrame({"text_id": np.arange(len(docs)), "tokens": n, "base_nll": b_nll, "tuned_nll": t_nll})
    acc = task_accuracy(b, t, eval_tasks, task_limit, batch_size) if eval_tasks else None
    return ForgettingResult(df, b_ppl, t_ppl, b.name, t.name, acc, trained_families(tuned))
