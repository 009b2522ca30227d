"""UDS (Utility-Diversity Sampling, "Utility-Diversity Aware Online Batch Selection for
LLM Supervised Fine-tuning"), run here OFFLINE: the paper selects inside the training loop
(score each incoming batch with the model being trained, train on the best b of it);
that online use is NOT implemented in the workbench — no trainer calls this module.

What there is:
- `select(pool, "uds", ...)`: offline selection over the pool with UDS's scoring and memory
  buffer. The pool is shuffled and walked in batches of `batch_size` rows; each batch keeps
  its share of the budget (∝ its size) by the score below, and the kept rows' embeddings
  enter a FIFO memory that the next batches are compared with. The scorer is a fixed
  model, not the one being trained, so "utility" is measured once, before any training.
- `uds_select(logits_list, embeddings, memory, b)` + `update_memory(...)`: the same scoring
  for one batch you hand it (the building block for an online loop you write yourself).

Scoring (per sample):
- utility + intra-sample diversity: the nuclear norm of the sample's (tokens × vocab)
  logits matrix, as the paper and its reference code (gfyddha/UDS) compute it; here over
  the response tokens only (the reference takes every position of the padded sequence).
- inter-sample diversity: cosine distance of the sample's embedding to the nearest entry
  of the FIFO memory. Our reading: the reference embeds the logits matrix itself with a
  fast Johnson-Lindenstrauss sketch and uses the *mean* Euclidean distance to the queue.
- mixing: both min-max normalised within the batch, (1-λ)·utility + λ·diversity, λ =
  `diversity_weight`. Our reading: the reference adds them unnormalised,
  utility + α·diversity with α = 2.5e-3.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import WorkbenchError
from .base import strategy
from .embeddings import MINILM


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


def _uds_rank(utility: np.ndarray, diversity: np.ndarray, b: int, diversity_weight: float):
    scores = (1 - diversity_weight) * _minmax(utility) + diversity_weight * _minmax(diversity)
    return np.argsort(-scores, kind="stable")[:b], scores


def uds_select(logits_list, embeddings, memory, b: int, *, diversity_weight: float = 0.5):
    """Choose b of one batch. Returns (indices, scores, parts) with indices best first."""
    n = len(logits_list)
    if len(embeddings) != n:
        raise WorkbenchError(f"uds_select: {n} logits matrices but {len(embeddings)} embeddings")
    if not 1 <= b <= n:
        raise WorkbenchError(f"uds_select: b must be in [1, {n}], got {b}")
    utility = nuclear_norms(logits_list)
    diversity = memory_distance(embeddings, memory)
    order, scores = _uds_rank(utility, diversity, b, diversity_weight)
    return order, scores, {"nuclear_norm": utility, "memory_distance": diversity}


def update_memory(memory: np.ndarray | None, new: np.ndarray, size: int = 256) -> np.ndarray:
    """Append the trained-on embeddings and keep the newest `size` (FIFO)."""
    new = np.asarray(new, dtype=np.float32)
    mem = new if memory is None or len(memory) == 0 else np.concatenate([np.asarray(memory, np.float32), new])
    return mem[-size:]


@dataclass
class UdsKnobs:
    scorer: str = field(default="smollm2-135m-instruct", metadata={
        "help": "model whose response logits give the nuclear norm (a fixed model: offline)"})
    batch_size: int = field(default=16, metadata={
        "help": "candidate batch size B; each batch keeps ≈ B·k/N rows"})
    diversity_weight: float = field(default=0.5, metadata={"help": "λ in (1-λ)·utility + λ·diversity"})
    memory_size: int = field(default=256, metadata={"help": "FIFO memory of kept rows' embeddings"})
    embedder: str = field(default=MINILM, metadata={
        "help": "minilm or a workbench model name (embeddings for the memory distance)"})
    text: str = field(default="both", metadata={"help": "embed instruction, response or both"})
    embeddings: Any = field(default=None, metadata={"help": "precomputed (rows × dim) embeddings instead of embedding"})
    max_length: int = field(default=256, metadata={"min": 2, "help": "truncate prompt+response to this many tokens"})


def response_nuclear_norms(model, tok, instructions, responses, max_length: int) -> np.ndarray:
    """Nuclear norm of each response's (tokens × vocab) logits, one row per forward pass
    (a vocab-wide logits matrix per row is large; rows are not batched)."""
    import torch

    from .scoring import encode

    device = next(model.parameters()).device
    out = np.zeros(len(responses))
    with torch.no_grad():
        for r, (ins, res) in enumerate(zip(instructions, responses)):
            ids, start = encode(tok, ins, res, max_length)
            if len(ids) <= start:
                continue  # no response tokens: utility 0
            logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, start - 1:len(ids) - 1]
            out[r] = float(torch.linalg.matrix_norm(logits.float(), ord="nuc"))
    return out


@strategy("uds", UdsKnobs, "UDS scoring run offline over the pool: logits nuclear norm + distance to a memory "
                           "of kept rows (the paper's online use is not implemented)")
def select_uds(pool, k, rng, knobs):
    from .kmeans import pool_embeddings, proportional_quotas
    from .scoring import load_scorer

    if knobs.batch_size < 1 or not 0 <= knobs.diversity_weight <= 1 or knobs.memory_size < 1:
        raise WorkbenchError("selection.uds: batch_size and memory_size must be ≥ 1, diversity_weight in [0, 1]")
    emb = pool_embeddings(pool, knobs)
    model, tok = load_scorer(knobs.scorer)
    utility = response_nuclear_norms(model, tok, pool.instructions, pool.responses, knobs.max_length)
    order = rng.permutation(len(pool))
    batches = [order[i:i + knobs.batch_size] for i in range(0, len(order), knobs.batch_size)]
    keep = proportional_quotas([len(b) for b in batches], k)
    memory, chosen = None, []
    distance = np.full(len(pool), np.nan)
    batch_of = np.zeros(len(pool), dtype=int)
    for j, (batch, b) in enumerate(zip(batches, keep)):
        batch_of[batch] = j
        d = memory_distance(emb[batch], memory)
        distance[batch] = d
        if b == 0:
            continue
        top, _ = _uds_rank(utility[batch], d, int(b), knobs.diversity_weight)
        chosen += [int(i) for i in batch[top]]
        memory = update_memory(memory, emb[batch[top]], knobs.memory_size)
    return np.array(chosen), None, {
        "nuclear_norm": utility, "memory_distance_when_scored": distance,
        "batch_of": batch_of, "batches": len(batches), "online": False,
    }
