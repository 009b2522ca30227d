"""BCO (Jung et al., "Binary Classifier Optimization for LLM Alignment"), unpaired form:
a logistic classifier whose logit is the implicit reward r = β·(log π − log π_ref), shifted
by δ, the running mean of the rewards seen so far (reward shift):

    L = −log σ(r_w − δ) over desirable responses − log σ(−(r_u − δ)) over undesirable ones

averaged over all responses in the batch. This is "BCO without UDM": the paper's
density-ratio ("underlying distribution matching") weights on the undesirable samples are
not implemented (every sample has weight 1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bco_loss(rewards: torch.Tensor, labels: torch.Tensor, delta: float | torch.Tensor) -> torch.Tensor:
    """rewards (N,) already include β; labels (N,) bool (True = desirable); delta scalar."""
    signed = torch.where(labels, rewards - delta, -(rewards - delta))
    return -F.logsigmoid(signed).mean()
