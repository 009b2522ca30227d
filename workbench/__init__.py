"""LM Workbench core library: models, data, methods, training, runs, analysis, selection.

Heavy modules (torch, transformers) load on first use, so `import workbench` is cheap."""
from .config import TrainConfig
from .errors import WorkbenchError

__all__ = ["TrainConfig", "WorkbenchError", "train", "RunResult", "select"]


def __getattr__(name):
    if name in ("train", "RunResult"):
        from . import engine
        return getattr(engine, name)
    if name == "select":
        from .selection import select
        return select
    raise AttributeError(name)
