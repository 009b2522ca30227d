"""AFT constraint alignment loss (Wang et al. 2023, "Making Large Language Models Better
Reasoners with Alignment", arXiv 2309.02144).

Score of a response: its length-normalised log-likelihood s(y) = (1/|y|)·log π(y|x), no
reference model. For one prompt's responses with feedback ψ (binary correct/incorrect:
positives ψ = 1, negatives ψ = 0; or graded ranks):

    alignment  = log(1 + Σ_{i,j: ψ_i > ψ_j} exp(s_j − s_i))        every better above every worse
    T_j        = sg(min_{i: ψ_i > ψ_j} s_i) − B                     the floor under each worse one
    constraint = log(1 + Σ_j exp(T_j − s_j))                         boundary constraint ("soft")
               | Σ_j max(0, T_j − s_j)                               (constraint_form="hinge")
    NLL        = mean over the top-labelled responses of −s          the SFT (VFT) term
    L          = alignment + constraint + nll_weight·NLL   per list; mean over lists

Binary feedback: T is the lowest positive score minus B for every negative, which is the
paper's boundary-constraint loss; its SFT term is added with weight 1. Our reading (see the
card): the detached floor sg(·), the per-response floor in the ranking case, the NLL on the
top-labelled responses of lists that have a worse one (the data has no separate gold field),
and the default B. `constraint=False` gives the unconstrained alignment loss the paper argues
degrades the model; the paper's other variant (the detached constraint) is not implemented."""
from __future__ import annotations

import torch

CONSTRAINT_FORMS = ("soft", "hinge")


def aft_loss(scores: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None, *,
             boundary: float = 1.0, constraint: bool = True, constraint_form: str = "soft",
             nll_weight: float = 1.0) -> torch.Tensor:
    """scores, labels (B, K): per-response score s (mean token log-prob) and feedback ψ;
    valid (B, K) bool (padding slots False)."""
    if constraint_form not in CONSTRAINT_FORMS:
        raise ValueError(f"constraint_form must be one of {CONSTRAINT_FORMS}, got {constraint_form!r}")
    if valid is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    better = (labels[:, :, None] > labels[:, None, :]) & valid[:, :, None] & valid[:, None, :]  # [b, i, j]: i above j
    diff = scores[:, None, :] - scores[:, :, None]          # [b, i, j] = s_j − s_i
    neg_inf = torch.full_like(diff, float("-inf"))
    # log(1 + Σ exp(.)) = logsumexp over {0} ∪ terms
    zero = torch.zeros_like(scores[:, :1])
    loss = torch.logsumexp(torch.cat([zero, torch.where(better, diff, neg_inf).flatten(1)], dim=1), dim=1)
    has_better = better.any(dim=1)                          # [b, j]: j has someone above it
    if constraint:
        above = torch.where(better, scores.detach()[:, :, None], torch.full_like(diff, float("inf")))
        floor = above.min(dim=1).values - boundary          # [b, j]: lowest better score − B (no gradient)
        gap = torch.where(has_better, floor - scores, torch.full_like(scores, float("-inf")))
        if constraint_form == "soft":
            loss = loss + torch.logsumexp(torch.cat([zero, gap], dim=1), dim=1)
        else:
            loss = loss + torch.relu(gap).sum(dim=1)
    if nll_weight:
        # the SFT term: top-labelled responses of lists that have at least one worse response
        lab = labels.to(scores.dtype)
        top = lab.masked_fill(~valid, float("-inf")).max(dim=1, keepdim=True).values
        best = (lab == top) & valid & has_better.any(dim=1, keepdim=True)
        count = best.sum(dim=1)
        nll = torch.where(best, -scores, torch.zeros_like(scores)).sum(dim=1) / count.clamp(min=1)
        loss = loss + nll_weight * nll
    return loss.mean()
