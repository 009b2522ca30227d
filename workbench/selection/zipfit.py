"""`zipfit`: ZIP-FIT (Obbad et al. 2024) — rank rows by gzip normalised compression
distance to a target set; rows that compress well together with target examples share
their structure.

NCD(x, y) = (C(xy) - min(C(x), C(y))) / max(C(x), C(y)), C = gzip-compressed length.
A row's score is 1 - mean NCD over (a sample of) the target examples; the k highest win.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .base import strategy, top_k
from .text import target_texts


@dataclass
class ZipfitKnobs:
    target: Any = field(default=None, metadata={"help": "target set: dataset source or list of strings"})
    max_target: int = field(default=64, metadata={"min": 1,
        "help": "compare against at most this many target examples (random sample)"})
    level: int = field(default=6, metadata={"min": 1, "max": 9, "help": "gzip compression level (1-9)"})
    text: str = field(default="both", metadata={"help": "compare instruction, response or both"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def _clen(data: bytes, level: int) -> int:
    return len(gzip.compress(data, compresslevel=level, mtime=0))


def ncd_matrix(rows: list[str], targets: list[str], level: int = 6, progress: bool = False) -> np.ndarray:
    """(len(rows) × len(targets)) normalised compression distances."""
    rb = [r.encode() for r in rows]
    tb = [t.encode() for t in targets]
    c_rows = np.array([_clen(b, level) for b in rb], dtype=float)
    c_tgt = np.array([_clen(b, level) for b in tb], dtype=float)
    out = np.empty((len(rb), len(tb)))
    for i, x in enumerate(tqdm(rb, desc="zipfit", disable=not progress)):
        for j, y in enumerate(tb):
            out[i, j] = _clen(x + b" " + y, level)
    lo = np.minimum(c_rows[:, None], c_tgt[None, :])
    hi = np.maximum(c_rows[:, None], c_tgt[None, :])
    return (out - lo) / hi


@strategy("zipfit", ZipfitKnobs, "gzip compression distance to a target set (ZIP-FIT)")
def select_zipfit(pool, k, rng, knobs):
    targets = target_texts(knobs.target, "selection.zipfit.target")
    if len(targets) > knobs.max_target:
        targets = [targets[i] for i in rng.choice(len(targets), knobs.max_target, replace=False)]
    ncd = ncd_matrix(pool.texts(knobs.text), targets, knobs.level, knobs.progress)
    scores = 1.0 - ncd.mean(axis=1)
    return top_k(scores, k), scores, {"score": "1 - mean gzip NCD to the target", "target_size": len(targets)}
