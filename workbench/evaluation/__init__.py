"""Evaluation: EleutherAI's lm-evaluation-harness on the in-memory model (HFLM over our loaded
model and tokenizer), with built-in offline task configs (tasks/*.yaml) and results that feed
the run store. See docs/evaluation.md."""
from .config import ALIASES, BUILTIN_TASKS, CODE_TASKS, VERIFIABLE_TASKS, EvalConfig

__all__ = ["evaluate", "EvalConfig", "EvalResult", "TaskScore", "BUILTIN_TASKS", "VERIFIABLE_TASKS",
           "CODE_TASKS", "ALIASES"]


def __getattr__(name):
    if name == "evaluate":  # loads torch/lm-eval only when used
        from .api import evaluate
        return evaluate
    if name in ("EvalResult", "TaskScore"):  # pandas: not for the CLI's parser, which reads config only
        from . import results
        return getattr(results, name)
    raise AttributeError(name)
