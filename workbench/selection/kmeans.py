"""`kmeans`: diversity by clustering (Diversify and Conquer, Yu et al. 2024).

Embed the rows, run scikit-learn KMeans, then spread the budget across clusters and pick
inside each cluster at random (or nearest its centroid with `within=centroid`).

- `allocation=proportional` (default, the reference's `KMeansRandom`): each cluster gets
  floor(|cluster| / N · budget) rows, as the reference's `int(...)` does; the reference then
  returns fewer rows than asked, so the rows its flooring leaves over go one each to the
  clusters with the largest fractional parts (largest-remainder rounding; our addition so
  that exactly k rows come back). `allocation=equal`: equal quotas, water-filled where a
  cluster is too small (the workbench's earlier default; the reference's iterative script
  also starts its first round with equal quotas).
- `rounds > 1`: iterative refinement. The budget is spent in rounds; after each round
  every cluster gets a usefulness score and the next round's quotas follow from it.
  Defaults follow the reference (`selection/iter.py`): `usefulness=reward_gap`, the mean
  over the cluster's rows selected so far of reward(gold answer) − reward(answer generated
  by the model fine-tuned on the selection), and `reweight=sample`: cluster weights
  exp(u) / Σ exp(u), and the round's budget is drawn cluster by cluster from that
  distribution (multinomial), capped by what is left in each cluster. Our readings: the
  reference trains a full fine-tune and scores with a reward model
  (hh_rlhf_rm_open_llama_3b); here the scorer is fine-tuned for `train_steps` AdamW steps
  and, unless a `reward(instructions, responses) -> scores` callable is given, the reward
  is the frozen scorer's mean token log-likelihood of the answer; rows the cap leaves
  over are redrawn among clusters with room (the reference leaves them unspent); a
  cluster with no selected row yet scores 0. The reference's round budget is
  N · portion / K / rounds (divided by K once more than the first round's); we spend
  budget / rounds every round.
- Kept as named options: `usefulness=loss_reduction` (mean loss reduction on held-out
  rows of the cluster after the fine-tuning steps) or any callable
  `usefulness(pool, labels, chosen) -> per-cluster scores` (`chosen` = the round's picks);
  `reweight=softmax_z`: deterministic quotas ∝ softmax(standardised usefulness /
  temperature) (the workbench's earlier reading).
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
    allocation: str = field(default="proportional", metadata={
        "help": "proportional = quotas ∝ cluster size (reference); equal = the same quota per cluster"})
    rounds: int = field(default=1, metadata={"help": "selection rounds; > 1 re-weights clusters by usefulness"})
    usefulness: Any = field(default="reward_gap", metadata={
        "help": "reward_gap (reference: reward(gold) − reward(generated) on the cluster's picks), "
                "loss_reduction, or a callable (pool, labels, chosen) -> per-cluster scores"})
    reweight: str = field(default="sample", metadata={
        "help": "sample = draw the round's budget from softmax(usefulness) (reference); "
                "softmax_z = quotas ∝ softmax(standardised usefulness / temperature)"})
    temperature: float = field(default=1.0, metadata={
        "above": 0, "help": "softmax temperature (reweight=softmax_z only)"})
    reward: Any = field(default="scorer_loglik", metadata={
        "help": "reward_gap's reward: scorer_loglik (frozen scorer's mean token log-likelihood) "
                "or a callable (instructions, responses) -> scores"})
    max_new_tokens: int = field(default=64, metadata={"min": 1, "help": "length of the generated answers (reward_gap)"})
    scorer: str = field(default="smollm2-135m-instruct", metadata={
        "help": "model fine-tuned briefly to measure loss reduction"})
    train_steps: int = field(default=4, metadata={"min": 1, "help": "fine-tuning steps per round (loss_reduction)"})
    learning_rate: float = field(default=1e-3, metadata={"above": 0, "help": "learning rate of those steps"})
    probe_per_cluster: int = field(default=4, metadata={
        "min": 1, "help": "held-out rows per cluster to measure loss on"})


def pool_embeddings(pool, knobs) -> np.ndarray:
    if knobs.embeddings is not None:
        emb = np.asarray(knobs.embeddings, dtype=np.float32)
        if emb.ndim != 2 or len(emb) != len(pool):
            raise WorkbenchError(f"selection: embeddings must be (rows × dim) with {len(pool)} rows, "
                                 f"got shape {emb.shape}")
        return emb
    return embed(pool.texts(knobs.text), knobs.embedder)


def proportional_quotas(sizes, k: int) -> np.ndarray:
    """Quotas ∝ cluster size: floor(size / N · k) as the reference rounds, then the rows
    the flooring leaves over one each to the largest fractional parts (ties: lower index)."""
    sizes = np.asarray(sizes, dtype=int)
    exact = sizes * k / sizes.sum()
    quota = np.floor(exact + 1e-9).astype(int)
    left = k - quota.sum()
    if left > 0:
        frac = exact - quota
        quota[np.argsort(-frac, kind="stable")[:left]] += 1
    return np.minimum(quota, sizes)


def sampled_quotas(room, weights, budget: int, rng) -> np.ndarray:
    """The reference's draw: `budget` cluster ids drawn with replacement with probabilities
    `weights`, each cluster capped by its room; the capped-off rows are redrawn among the
    clusters with room (our reading; the reference leaves them unspent)."""
    room = np.asarray(room, dtype=int)
    p = np.asarray(weights, dtype=float)
    quota = np.minimum(rng.multinomial(int(budget), p / p.sum()), room)
    while quota.sum() < budget:
        open_ = quota < room
        q = np.where(open_, p, 0.0)
        q = q / q.sum() if q.sum() > 0 else open_ / open_.sum()
        quota = np.minimum(quota + rng.multinomial(int(budget - quota.sum()), q), room)
    return quota


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


def _reward_gap_fn(knobs, rng):
    from .scoring import generate, load_scorer, response_losses, train_steps

    base, tok = load_scorer(knobs.scorer)
    model = copy.deepcopy(base)  # fine-tuned across rounds on the selection; the cached scorer stays intact
    if callable(knobs.reward):
        reward = knobs.reward
    elif knobs.reward == "scorer_loglik":
        def reward(ins, res):
            return -response_losses(base, tok, ins, res, progress=False)
    else:
        raise WorkbenchError(f"selection.kmeans.reward: expected scorer_loglik or a callable, got {knobs.reward!r}")
    seen: list[int] = []

    def usefulness(pool, labels, chosen):
        seen.extend(int(i) for i in chosen)
        train_steps(model, tok, [pool.instructions[i] for i in chosen], [pool.responses[i] for i in chosen],
                    steps=knobs.train_steps, lr=knobs.learning_rate, seed=int(rng.integers(1 << 31)))
        ins = [pool.instructions[i] for i in seen]
        gen = generate(model, tok, ins, max_new_tokens=knobs.max_new_tokens)
        gap = (np.asarray(reward(ins, [pool.responses[i] for i in seen]), dtype=float)
               - np.asarray(reward(ins, gen), dtype=float))
        lab = labels[seen]
        return np.array([np.nanmean(gap[lab == c]) if np.any(lab == c) else 0.0
                         for c in range(labels.max() + 1)])
    return usefulness


@strategy("kmeans", KmeansKnobs, "k-means on embeddings, budget ∝ cluster size (Diversify and Conquer)")
def select_kmeans(pool, k, rng, knobs):
    if knobs.within not in ("random", "centroid"):
        raise WorkbenchError(f"selection.kmeans.within: expected random or centroid, got {knobs.within!r}")
    if knobs.allocation not in ("proportional", "equal"):
        raise WorkbenchError(f"selection.kmeans.allocation: expected proportional or equal, got {knobs.allocation!r}")
    if knobs.reweight not in ("sample", "softmax_z"):
        raise WorkbenchError(f"selection.kmeans.reweight: expected sample or softmax_z, got {knobs.reweight!r}")
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
        if callable(knobs.usefulness):
            useful = knobs.usefulness
        elif knobs.usefulness == "reward_gap":
            useful = _reward_gap_fn(knobs, rng)
        elif knobs.usefulness == "loss_reduction":
            useful = _loss_reduction_fn(knobs, rng)
        else:
            raise WorkbenchError("selection.kmeans.usefulness: expected reward_gap, loss_reduction or a callable, "
                                 f"got {knobs.usefulness!r}")

    weights = None  # None: the first round's allocation rule
    chosen: list[int] = []
    history = []
    budgets = np.diff(np.linspace(0, k, knobs.rounds + 1).round().astype(int))
    for r, budget in enumerate(budgets):
        taken = np.zeros(len(pool), bool)
        taken[chosen] = True
        sizes = np.array([np.sum((labels == c) & ~taken) for c in range(n_clusters)])
        if weights is None:
            quota = (proportional_quotas(sizes, int(budget)) if knobs.allocation == "proportional"
                     else allocate(sizes, np.ones(n_clusters), int(budget)))
        elif knobs.reweight == "sample":
            quota = sampled_quotas(sizes, weights, int(budget), rng)
        else:
            quota = allocate(sizes, weights, int(budget))
        new = [int(i) for c in range(n_clusters)
               for i in _pick(np.where((labels == c) & ~taken)[0], quota[c], rng,
                              dist if knobs.within == "centroid" else None)]
        chosen += new
        if useful is not None and r < len(budgets) - 1:
            u = np.asarray(useful(pool, labels, np.array(new)), dtype=float)
            if knobs.reweight == "sample":
                weights = np.exp(u - u.max())  # exp(u) / Σ exp(u), as the reference normalises
            else:
                z = (u - u.mean()) / (u.std() + 1e-12)
                weights = np.exp(z / knobs.temperature)
            history.append({"round": r, "usefulness": u.tolist(), "weights": (weights / weights.sum()).tolist()})
    counts = np.bincount(labels[chosen], minlength=n_clusters)
    return np.array(chosen), None, {
        "labels": labels, "embeddings": emb, "n_clusters": n_clusters,
        "clusters_covered": int(np.sum(counts > 0)), "per_cluster": counts.tolist(),
        "cluster_sizes": np.bincount(labels, minlength=n_clusters).tolist(),
        "reweighting": history,
    }
