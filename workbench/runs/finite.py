"""Whether a model's trainable weights are all finite. An update that took a NaN or an
infinite gradient leaves them NaN or infinite, often a step before the logged loss shows it
(the loss is computed before the update): such weights are neither checkpointed nor saved."""
from __future__ import annotations

from .. import distributed


def trainable_weights_finite(model) -> bool:
    """True when every trainable parameter is finite, on every rank (FSDP shards the weights:
    all ranks must call this at the same point). Checked through each tensor's sum, which is
    NaN or infinite when any entry is (or when finite entries ~1e38/n overflow it, weights no
    run could use either): 27 ms for SmolLM2's 135M weights on 2 cores, against 300 ms for an
    elementwise isfinite, and 750 ms for save_pretrained alone."""
    import torch

    trainable = [w.detach().sum(dtype=torch.float32) for w in model.parameters() if w.requires_grad]
    mine = not trainable or bool(torch.isfinite(torch.stack(trainable)).all())
    return not distributed.any_rank(not mine)
