"""The SFT-variant losses as plain tensor functions, so each can be checked by hand on
small tensors and shared by the trainers built on `trainers.logit_sft.LogitSFTTrainer`
(Anchored SFT, DFT with KL tracking, loss reweighting).

Conventions: `logits` are [batch, seq, vocab] and `labels` [batch, seq] as the collator
makes them (unshifted, -100 on positions that are not trained); `shift` aligns position t
with the token at t+1. Token sums are divided by `denom` (the number of trained tokens in
the whole accumulated batch when the trainer passes one, as TRL does)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def shift(logits: torch.Tensor, labels: torch.Tensor):
    """(logits predicting each next token, those tokens, mask of trained positions).
    Prompt-learning adapters (prompt/p-tuning) prepend virtual-token positions to the
    logits; those are dropped so logits and labels line up."""
    logits = logits[:, logits.shape[1] - labels.shape[1]:]
    logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != IGNORE
    return logits, labels.clamp(min=0), mask


def token_log_probs(logits: torch.Tensor, labels: torch.Tensor):
    """(log-softmax over the vocabulary [B,T,V], log p of each label [B,T], mask [B,T])
    on the shifted positions, in float32."""
    logits, labels, mask = shift(logits, labels)
    logp = F.log_softmax(logits.float(), dim=-1)
    token_logp = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return logp, token_logp * mask, mask


def _denom(mask: torch.Tensor, denom=None) -> torch.Tensor:
    d = mask.sum() if denom is None else denom
    return torch.as_tensor(d, device=mask.device).clamp(min=1)


def nll_loss(token_logp: torch.Tensor, mask: torch.Tensor, denom=None) -> torch.Tensor:
    """Cross-entropy on trained tokens: Σ −log p_t / N."""
    return -(token_logp * mask).sum() / _denom(mask, denom)


def dft_loss(token_logp: torch.Tensor, mask: torch.Tensor, denom=None) -> torch.Tensor:
    """DFT: Σ −sg(p_t)·log p_t / N (each token's loss scaled by its detached probability)."""
    weight = token_logp.detach().exp()
    return -(weight * token_logp * mask).sum() / _denom(mask, denom)


def token_kl(logp: torch.Tensor, ref_logp: torch.Tensor, direction: str = "ref_policy") -> torch.Tensor:
    """Per-position KL over the vocabulary [B,T].
    ref_policy: KL(π_ref ‖ π_θ) = Σ_v π_ref (log π_ref − log π_θ)  (the ASFT authors' code)
    policy_ref: KL(π_θ ‖ π_ref) = Σ_v π_θ (log π_θ − log π_ref)"""
    if direction == "ref_policy":
        return (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    if direction == "policy_ref":
        return (logp.exp() * (logp - ref_logp)).sum(-1)
    raise ValueError(f"unknown KL direction {direction!r}")


def masked_mean_sum(values: torch.Tensor, mask: torch.Tensor, denom=None) -> torch.Tensor:
    return (values * mask).sum() / _denom(mask, denom)


def sample_losses(token_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean NLL of each sample's trained tokens [B] (samples with none count 0)."""
    n = mask.sum(-1)
    return -(token_logp * mask).sum(-1) / n.clamp(min=1)


def softmax_weights(losses: torch.Tensor, tau: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample weights n·softmax(sg(loss)/τ) over the samples that have trained tokens,
    so they average 1: high-loss samples get more weight, low-loss (already learned,
    redundant) ones less; τ → ∞ gives plain averaging."""
    valid = torch.ones_like(losses, dtype=torch.bool) if valid is None else valid
    scores = (losses.detach() / tau).masked_fill(~valid, float("-inf"))
    return torch.softmax(scores, dim=0) * valid.sum()


def reweighted_loss(token_logp: torch.Tensor, mask: torch.Tensor, tau: float):
    """(Σ_i w_i·ℓ_i / n over samples with trained tokens, the weights)."""
    losses = sample_losses(token_logp, mask)
    valid = mask.any(-1)
    w = softmax_weights(losses, tau, valid)
    return (w * losses).sum() / valid.sum().clamp(min=1), w
