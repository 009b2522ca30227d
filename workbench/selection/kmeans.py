"""`kmeans`: diversity by clustering (Diversify and Conquer, Yu et al. 2024).

Embed the rows, run scikit-learn KMeans, then spread the budget across clusters (equal
quotas, water-filled where a cluster is too small), picking inside each cluster at random
or nearest its centroid. With `rounds > 1` the budget is spent in rounds and clusters are
re-weighted after each by how useful their rows were: by default the mean per-cluster
loss reduction on held-out probe rows after a few fine-tuning steps of the scorer model on
that round's picks, or any callable `usefulness(pool, labels, chosen) -> per-cluster
scores`. Turning usefulness into weights by a softmax of the standardised scores is our
reading of the paper's re-weighting (inference).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from ..errors import WorkbenchError
from .base import strategy
from .embeddings import MINILM, embed


@dataclass
class KmeansKnobs:
    n_clusters: int = field(default=0, metadata={"help": "clusters (0 = min(k, sqrt(pool size)))"})
    within: str = field(default="random", metadata={
        "help": "pick inside a cluster: random or centroid (nearest first)"})
    embedder: str = field(default=MINILM, metadata={
        "help": "minilm or a workbench model name (mean-pooled hidden states)"})
    text: str = field(default="both", metadata={"help": "embed instruction, response or both"})
    embeddings: Any = field(default=None, metadata={"help": "precomputed (rows × dim) embeddings instead of embedding"})
    rounds: int = field(default=1, metadata={"help": "selection rounds; > 1 re-weights clusters by usefulness"})
    usefulness: Any = field(default="loss_reduction", metadata={
        "help": "loss_reduction or a callable (pool, labels, chosen) -> per-cluster scores"})
    temperature: float = field(default=1.0, metadata={"help": "softmax temperature of the re-weighting"})
    scorer: str = field(default="smollm2-135m-instruct", metadata={
        "help": "model fine-tuned briefly to measure loss reduction"})
    train_steps: int = field(default=4, metadata={"help": "fine-tuning steps per round (loss_reduction)"})
    learning_rate: float = field(default=1e-3, metadata={"help": "learning rate of those steps"})
    probe_per_cluster: int = field(default=4, metadata={"help": "held-out rows per cluster to measure loss on"})


def pool_embeddings(pool, knobs) -> np.ndarray:
    if knobs.embeddings is not None:
        emb = np.asarray(knobs.embeddings, dtype=np.float32)
        if emb.ndim != 2 or len(emb) != len(pool):
            raise WorkbenchError(f"selection: embeddings must be (rows × dim) with {len(pool)} rows, "
                                 f"got shape {emb.shape}")
        return emb
    return embed(pool.texts(knobs.text), knobs.embedder)


def allocate(sizes: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Integer quotas ∝ weights summing to k, none above its cluster's size."""
    quota = np.zeros(len(sizes), dtype=int)
    weights = np.asarray(weights, dtype=float)
    while quota.sum() < k:
        open_ = quota < sizes
        left = k - quota.sum()
        share = np.where(open_, weights, 0.0)
        share = share / share.sum() * left if share.sum() > 0 else open_ / open_.sum() * left
        add = np.minimum(np.floor(share).astype(int), sizes - quota)
        if add.sum() == 0:  # hand out the remainder one by one, largest share first
            for c in np.argsort(-share, kind="stable"):
                if quota.sum() == k:
                    break
                if quota[c] < sizes[c]:
                    quota[c] += 1
        quota += add
    return quota


def _pick(members: np.ndarray, n: int, rng, dist: np.ndarray | None) -> np.ndarray:
    if n <= 0:
        return members[:0]
    if dist is None:
        return rng.choice(members, size=n, replace=False)
    return members[np.argsort(dist[members], kind="stable")[:n]]


def _loss_reduction_fn(knobs, rng):
    from .scoring import load_scorer, response_losses, train_steps

    base, tok = load_scorer(knobs.scorer)
    model = copy.deepcopy(base)  # fine-tuned across rounds; the cached scorer stays intact

    def usefulness(pool, labels, chosen):
        n_clusters = labels.max() + 1
        taken = np.zeros(len(pool), bool)
        taken[chosen] = True
        probes = np.concatenate([rng.permutation(np.where((labels == c) & ~taken)[0])[:knobs.probe_per_cluster]
                                 for c in range(n_clusters)]).astype(int)
        if len(probes) == 0:
            return np.zeros(n_clusters)
        ins = [pool.instructions[i] for i in probes]
        res = [pool.responses[i] for i in probes]
        before = response_losses(model, tok, ins, res, progress=False)
        train_steps(model, tok, [pool.instructions[i] for i in chosen], [pool.responses[i] for i in chosen],
                    steps=knobs.train_steps, lr=knobs.learning_rate, seed=int(rng.integers(1 << 31)))
        gain = before - response_losses(model, tok, ins, res, progress=False)
        return np.array([np.nanmean(gain[labels[probes] == c]) if np.any(labels[probes] == c) else 0.0
                         for c in range(n_clusters)])
    return usefulness


@strategy("kmeans", KmeansKnobs, "k-means on embeddings, budget spread across clusters (Diversify and Conquer)")
def select_kmeans(pool, k, rng, knobs):
    if knobs.within not in ("random", "centroid"):
        raise WorkbenchError(f"selection.kmeans.within: expected random or centroid, got {knobs.within!r}")
    if knobs.rounds < 1:
        raise WorkbenchError(f"selection.kmeans.rounds: must be ≥ 1, got {knobs.rounds}")
    emb = pool_embeddings(pool, knobs)
    n_clusters = knobs.n_clusters or max(1, min(k, int(round(np.sqrt(len(pool))))))
    if not 1 <= n_clusters <= len(pool):
        raise WorkbenchError(f"selection.kmeans.n_clusters: must be in [1, {len(pool)}], got {n_clusters}")
    km = KMeans(n_clusters=n_clusters, n_init=3, random_state=int(rng.integers(1 << 31))).fit(emb)
    labels = km.labels_
    dist = np.linalg.norm(emb - km.cluster_centers_[labels], axis=1)
    useful = None
    if knobs.rounds > 1:
        useful = knobs.usefulness if callable(knobs.usefulness) else None
        if useful is None and knobs.usefulness != "loss_reduction":
            raise WorkbenchError("selection.kmeans.usefulness: expected loss_reduction or a callable, "
                                 f"got {knobs.usefulness!r}")
        useful = useful or _loss_reduction_fn(knobs, rng)

    weights = np.ones(n_clusters)
    chosen: list[int] = []
    history = []
    budgets = np.diff(np.linspace(0, k, knobs.rounds + 1).round().astype(int))
    for r, budget in enumerate(budgets):
        taken = np.zeros(len(pool), bool)
        taken[chosen] = True
        sizes = np.array([np.sum((labels == c) & ~taken) for c in range(n_clusters)])
        quota = allocate(sizes, weights, int(budget))
        new = [int(i) for c in range(n_clusters)
               for i in _pick(np.where((labels == c) & ~taken)[0], quota[c], rng,
                              dist if knobs.within == "centroid" else None)]
        chosen += new
        if useful is not None and r < len(budgets) - 1:
            u = np.asarray(useful(pool, labels, np.array(new)), dtype=float)
            z = (u - u.mean()) / (u.std() + 1e-12)
            weights = np.exp(z / knobs.temperature)
            history.append({"round": r, "usefulness": u.tolist(), "weights": (weights / weights.sum()).tolist()})
    counts = np.bincount(labels[chosen], minlength=n_clusters)
    return np.array(chosen), None, {
        "labels": labels, "embeddings": emb, "n_clusters": n_clusters,
        "clusters_covered": int(np.sum(counts > 0)), "per_cluster": counts.tolist(),
        "reweighting": history,
    }
