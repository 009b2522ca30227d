"""LM Workbench core library: models, data, methods, training, runs, analysis, selection,
decoding, evaluation, merging.

Heavy modules (torch, transformers, lm-eval) load on first use, so `import workbench` is cheap."""
from .config import TrainConfig
from .errors import WorkbenchError

__all__ = ["TrainConfig", "WorkbenchError", "train", "RunResult", "select", "evaluate", "merge"]


def __getattr__(name):  # lazy: each entry point imports its package when first used
    if name in ("train", "RunResult"):
        from . import engine
        return getattr(engine, name)
    if name == "evaluate":
        from .evaluation import evaluate
        return evaluate
    if name == "merge":
        from .merging import merge
        return merge
    if name == "select":
        from .selection import select
        return select
    raise AttributeError(name)
