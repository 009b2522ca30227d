"""UDS online batch selection (Utility-Diversity Sampling): from an oversized batch of B
samples keep the b most useful and diverse, inside the training loop.

- utility + intra-sample diversity: the nuclear norm of the sample's (tokens × vocab)
  logits matrix — large when predictions are both confident and varied across positions.
- inter-sample diversity: cosine distance of the sample's embedding to the nearest entry
  of a small FIFO memory of recently trained-on embeddings.
Both are min-max normalised within the batch and mixed as (1-λ)·utility + λ·diversity.
Normalising and mixing this way is our reading of the paper (inference).
"""
from __future__ import annotations

import numpy as np


def nuclear_norms(logits_list) -> np.ndarray:
    """Nuclear norm (sum of singular values) of each (tokens × vocab) logits matrix."""
    import torch

    return np.array([float(torch.linalg.matrix_norm(torch.as_tensor(logits).float(), ord="nuc"))
                     for logits in logits_list])


def memory_distance(embeddings: np.ndarray, memory: np.ndarray | None) -> np.ndarray:
    """Cosine distance of each embedding to its nearest memory entry (1 with an empty memory)."""
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    if memory is None or len(memory) == 0:
        return np.ones(len(emb))
    mem = np.asarray(memory, dtype=np.float64)
    mem = mem / np.maximum(np.linalg.norm(mem, axis=1, keepdims=True), 1e-12)
    return 1.0 - (emb @ mem.T).max(axis=1)


def _minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def uds_select(logits_list, embeddings, memory, b: int, *, diversity_weight: float = 0.5):
    """Choose b of the batch. Returns (indices, scores, parts) with indices best first."""
    from ..errors import WorkbenchError

    n = len(logits_list)
    if len(embeddings) != n:
        raise WorkbenchError(f"uds_select: {n} logits matrices but {len(embeddings)} embeddings")
    if not 1 <= b <= n:
        raise WorkbenchError(f"uds_select: b must be in [1, {n}], got {b}")
    utility = nuclear_norms(logits_list)
    diversity = memory_distance(embeddings, memory)
    scores = (1 - diversity_weight) * _minmax(utility) + diversity_weight * _minmax(diversity)
    order = np.argsort(-scores, kind="stable")[:b]
    return order, scores, {"nuclear_norm": utility, "memory_distance": diversity}


def update_memory(memory: np.ndarray | None, new: np.ndarray, size: int = 256) -> np.ndarray:
    """Append the trained-on embeddings and keep the newest `size` (FIFO)."""
    new = np.asarray(new, dtype=np.float32)
    mem = new if memory is None or len(memory) == 0 else np.concatenate([np.asarray(memory, np.float32), new])
    return mem[-size:]
