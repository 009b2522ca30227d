"""LM Workbench core library: models, data, methods, training, runs, analysis, selection,
decoding, evaluation, merging.

Heavy modules (torch, transformers, lm-eval) load on first use, so `import workbench` is cheap."""
import os as _os

from .allocator import keep_freed_memory as _keep_freed_memory
from .config import TrainConfig
from .errors import WorkbenchError
from .notebooks import HEADLESS_ENV as _HEADLESS_ENV
from .notebooks import skip_iri_grammars as _skip_iri_grammars

if _os.environ.get(_HEADLESS_ENV) == "1":  # a kernel `workbench run/check/sweep` started: plotly's
    _skip_iri_grammars()                   # figure display imports nbformat (see skip_iri_grammars)
    _keep_freed_memory()                   # probes and merges outside train() reuse memory too

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
