"""LiPO-λ (Liu et al., "LiPO: Listwise Preference Optimization through Learning-to-Rank").

For one prompt with K responses, labels ψ_i and scores s_i = β·(log π(y_i|x) − log π_ref(y_i|x)):

    L = Σ_{i,j: ψ_i > ψ_j} Δ_ij · log(1 + exp(−(s_i − s_j)))
    Δ_ij = |G_i − G_j| · |1/D(τ_i) − 1/D(τ_j)|,  G = 2^ψ − 1,  D(τ) = log2(1 + τ)

with τ_i the 1-based rank of response i when sorted by the current scores (the paper's
LambdaRank weights, from LambdaLoss; checked against a list worked by hand in
tests/methods_pref/test_pref_losses.py). Δ is treated as a constant (no gradient).
With K = 2, ψ = (1, 0) it is DPO's loss up to the constant weight Δ_12 = 1 − 1/log2(3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def lambda_weights(scores: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Δ_ij for a batch of lists: scores/labels (B, K), valid (B, K) bool for padded lists.
    Returns (B, K, K) with Δ_ij > 0 only where ψ_i > ψ_j (and both valid)."""
    scores = scores.detach()
    if valid is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    # rank by current score among the valid responses: invalid ones sort last
    masked = scores.masked_fill(~valid, float("-inf"))
    order = masked.argsort(dim=1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(1, scores.size(1) + 1, device=scores.device).expand_as(order))
    inv_disc = 1.0 / torch.log2(1.0 + ranks.to(scores.dtype))
    gains = torch.pow(2.0, labels.to(scores.dtype)) - 1.0
    delta = (gains[:, :, None] - gains[:, None, :]).abs() * (inv_disc[:, :, None] - inv_disc[:, None, :]).abs()
    pair = (labels[:, :, None] > labels[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    return delta * pair


def lipo_lambda_loss(scores: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over lists of Σ_{ψ_i>ψ_j} Δ_ij·softplus(−(s_i − s_j)). scores already include β."""
    weights = lambda_weights(scores, labels, valid)
    diff = scores[:, :, None] - scores[:, None, :]
    per_list = (weights * F.softplus(-diff)).sum(dim=(1, 2))
    return per_list.mean()
