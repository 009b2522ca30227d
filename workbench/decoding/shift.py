"""Token shift of one generated reply against a base model (the analysis's categories:
base rank 1 unshifted, 2–3 marginal, > 3 shifted), for the Chat tab and the notebook.

The contestant's own distribution is its model's, teacher-forced on its own prompt (for a
logit-transforming strategy that is the model before the transform)."""
from __future__ import annotations

import torch

from ..analysis.scoring import teacher_forced_logits, token_stats
from ..analysis.shift import categorise
from .generator import check_vocab, prompt_ids


@torch.inference_mode()
def reply_shift(decoder, base, messages: list[dict], token_ids: list[int], *, precision: str | None = None) -> dict:
    """{tokens, categories, ranks, kl, mean_kl, fractions} for one reply. `base`: a Side."""
    precision = precision or decoder.precision
    side = decoder.side
    check_vocab(side, base, "base", "token shift")
    if not token_ids:
        return {"tokens": [], "categories": [], "ranks": [], "kl": [], "mean_kl": 0.0,
                "fractions": {"unshifted": 0.0, "marginal": 0.0, "shifted": 0.0}}
    out = torch.tensor([token_ids])
    valid = torch.ones_like(out, dtype=torch.bool)
    t_logits = teacher_forced_logits(side, decoder.strategy.prompt_ids(side, [messages]), out, valid,
                                     precision=precision)
    b_logits = teacher_forced_logits(base, prompt_ids(base, [messages]), out, valid, precision=precision)
    s = token_stats(b_logits, t_logits.to(b_logits.device), out.to(b_logits.device))
    ranks = s["base_rank"][0].cpu().numpy()
    cats = [str(c) for c in categorise(ranks)]
    kl = s["kl"][0].cpu().tolist()
    n = len(cats)
    return {"tokens": decoder.tokenizer.batch_decode([[t] for t in token_ids]), "categories": cats,
            "ranks": ranks.tolist(), "kl": kl, "mean_kl": float(sum(kl) / n),
            "fractions": {c: cats.count(c) / n for c in ("unshifted", "marginal", "shifted")}}
