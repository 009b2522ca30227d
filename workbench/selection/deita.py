"""`deita`: score-first, diversity-aware selection in the style of Deita (Liu et al. 2024).

Deita scores each row by complexity × quality (from trained LLaMA scorers) and walks the
pool in score order, keeping a row only if its embedding's cosine distance to the nearest
already-kept row exceeds `threshold` (the "Repr Filter"). At our scale the scores come
from cheap proxies instead (say so when reporting):

- complexity = 1 + log(1 + words in the instruction)   — longer, more constrained asks
- quality    = log(1 + words in the response) × distinct-word ratio of the response
               — long answers that are not repetitive
or any numeric dataset column via `score_by`. If fewer than k rows pass the filter, the
rest is filled in score order from the rejected rows (reported as `filled`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import WorkbenchError
from .base import strategy
from .embeddings import MINILM
from .kmeans import pool_embeddings

_WORD = re.compile(r"\w+")


@dataclass
class DeitaKnobs:
    threshold: float = field(default=0.1, metadata={"below": 2, "help": (
        "keep a row only if its cosine distance (0..2) to every kept row exceeds this (Deita: 0.1; "
        "negative: no filter)")})
    score_by: str = field(default="proxy", metadata={"help": "proxy (complexity × quality) or a numeric column name"})
    embedder: str = field(default=MINILM, metadata={"help": "minilm or a workbench model name"})
    text: str = field(default="both", metadata={"help": "embed instruction, response or both"})
    embeddings: Any = field(default=None, metadata={"help": "precomputed (rows × dim) embeddings"})


def proxy_scores(pool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    complexity = np.array([1 + np.log1p(len(_WORD.findall(i))) for i in pool.instructions])
    quality = []
    for r in pool.responses:
        words = [w.lower() for w in _WORD.findall(r)]
        quality.append(np.log1p(len(words)) * (len(set(words)) / len(words) if words else 0.0))
    quality = np.array(quality)
    return complexity * quality, complexity, quality


def diverse_in_order(emb: np.ndarray, order: np.ndarray, k: int, threshold: float) -> tuple[list[int], int]:
    """Walk `order`; keep a row if 1 - max cosine to kept rows > threshold. Returns the kept
    rows (at most k) and how many were rejected as too close on the way."""
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    nearest = np.full(len(emb), -np.inf)  # max cosine of each row to the kept set
    kept, rejected = [], 0
    for i in order:
        if len(kept) == k:
            break
        if 1.0 - nearest[i] > threshold:
            kept.append(int(i))
            np.maximum(nearest, emb @ emb[i], out=nearest)
        else:
            rejected += 1
    return kept, rejected


@strategy("deita", DeitaKnobs, "score order + embedding-distance diversity filter (Deita, cheap proxy scores)")
def select_deita(pool, k, rng, knobs):
    if knobs.score_by == "proxy":
        scores, complexity, quality = proxy_scores(pool)
        extra = {"complexity": complexity, "quality": quality}
    else:
        cols = getattr(pool.rows, "column_names", None) or list(pool.rows[0])
        if knobs.score_by not in cols:
            raise WorkbenchError(f"selection.deita.score_by: no column {knobs.score_by!r}; columns: {', '.join(cols)}")
        scores, extra = np.array([float(r[knobs.score_by]) for r in pool.rows]), {}
    order = np.argsort(-scores, kind="stable")
    kept, rejected = diverse_in_order(pool_embeddings(pool, knobs), order, k, knobs.threshold)
    filled = k - len(kept)
    if filled:
        taken = set(kept)
        kept += [int(i) for i in order if i not in taken][:filled]
    score = "complexity × quality proxy" if knobs.score_by == "proxy" else knobs.score_by
    return np.array(kept), scores, {"score": score, "dropped_near_duplicates": rejected, "filled": filled, **extra}
