"""Data selection: choose which rows to train on.

    from workbench.selection import select, list_strategies
    sel = select(dataset, "ifd", fraction=0.2, scorer="smollm2-135m-instruct")
    sel.indices, sel.scores, sel.diagnostics, sel.subset(dataset)

Strategies register themselves by name; each lives in its own module. `uds` runs UDS's
scoring offline over the pool; `uds_select` / `update_memory` score one batch you hand
them. UDS's online use (selecting inside the training loop) is not implemented: no
trainer calls them.
"""
from . import deita, dsir, kmeans, longest, perplexity, random_subset, uds, zipfit  # noqa: F401  (register)
from .base import Selection, get_strategy, list_strategies, select
from .uds import uds_select, update_memory

__all__ = ["Selection", "select", "list_strategies", "get_strategy", "uds_select", "update_memory"]
