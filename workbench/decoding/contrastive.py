"""Contrastive generation (CGE): decode by log p_tuned − log p_base, restricted to tokens
the tuned model finds plausible (p_tuned ≥ α · max p_tuned), to surface what the tuning
data added (the contrastive-decoding plausibility cut-off of Li et al.).

`contrastive_generate` is the analysis-facing function (kept importable from
`workbench.analysis.contrastive`); it runs the `contrastive` strategy, whose
ContrastiveProcessor keeps the base model's own KV cache inside `model.generate`."""
from __future__ import annotations

from dataclasses import dataclass

from ..analysis.prompts import normalise_prompts
from ..analysis.resolve import resolve_pair


@dataclass
class ContrastiveResult:
    prompts: list[str]
    outputs: list[str]
    alpha: float


def contrastive_generate(base, tuned, prompts, *, alpha: float = 0.1, max_new_tokens: int = 64,
                         batch_size: int = 8, precision: str = "auto") -> ContrastiveResult:
    """Greedy decoding of argmax(log p_tuned − log p_base) over the plausible set. Both
    models keep their own KV cache; each step is one batched forward per model."""
    from .generator import Decoder

    b, t = resolve_pair(base, tuned)
    msgs = normalise_prompts(prompts)
    d = Decoder(t, "contrastive", {"base": b.name, "alpha": alpha, "max_new_tokens": max_new_tokens},
                precision=precision, aux={"base": b})
    gens = d.generate(msgs, batch_size=batch_size)
    outputs = [t.tokenizer.decode(g.token_ids) for g in gens]
    return ContrastiveResult(["\n\n".join(m["content"] for m in ms) for ms in msgs], outputs, alpha)
