"""Aligned SFT (Wang et al. 2024, "ASFT: Aligned Supervised Fine-Tuning through Absolute
Likelihood", arXiv 2409.10571): each response's own likelihood is pushed up (chosen) or down
(rejected) through its log-odds — no reference model, no Bradley–Terry margin between the two.

    P(y)       = exp(s(y)),  s(y) = (1/|y|)·Σ_t log π(y_t | x, y_<t)    length-normalised (paper)
    r_odds(y)  = log(P(y) / (1 − P(y)))                                  the odds score (paper, as ORPO)
    L_Align    = −log σ(β·r_odds(y_w)) − log σ(−β·r_odds(y_l))
    L          = nll_weight·NLL(y_w) + λ·L_Align

Paper: the odds score r_odds, the length normalisation (as in ORPO), the two absolute sigmoid
terms, and the SFT (NLL on y_w) term added with weight 1. With β = 1 (the paper's form, which
has no β) σ(r_odds) = P, so L_Align = −log P(y_w) − log(1 − P(y_l)) exactly.
Not the paper's: β is the tempering factor of Gorbatovski et al. 2025 ("The Differences Between
Direct Alignment Algorithms are a Blur"), default 1 = off; the default λ = 1 is our choice (the
value that paper found best for one-stage ASFT)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# P = exp(s) must stay below 1 for the odds to be finite: s is clamped to ≤ log(1 − 1e-6)
_MAX_SCORE = float(torch.log1p(torch.tensor(-1e-6)))


def log_odds(scores: torch.Tensor) -> torch.Tensor:
    """r_odds = log(P / (1 − P)) with P = exp(scores); scores are log-probabilities (≤ 0)."""
    s = scores.clamp(max=_MAX_SCORE)
    return s - torch.log(-torch.expm1(s))


def asft_loss(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor, chosen_nll: torch.Tensor, *,
              beta: float = 1.0, lam: float = 1.0, nll_weight: float = 1.0) -> torch.Tensor:
    """chosen/rejected_scores (B,): s(y) = log P(y) (mean token log-prob by default);
    chosen_nll (B,): mean token NLL of y_w (the SFT term)."""
    align = -F.logsigmoid(beta * log_odds(chosen_scores)) - F.logsigmoid(-beta * log_odds(rejected_scores))
    return (nll_weight * chosen_nll + lam * align).mean()
