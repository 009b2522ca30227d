"""Batched decoding and teacher forcing shared by every probe.

Everything here is one batched call per batch of prompts; the per-token maths (ranks,
probabilities, KL, top-k) is vectorised over batch × position × vocabulary."""
from __future__ import annotations

import contextlib

import torch

from ..config import PRECISIONS
from ..errors import WorkbenchError
from ..models.device import use_bf16


def resolved_precision(model, precision: str = "auto") -> str:
    """What `precision` ("auto", "fp32", "bf16") means for this model on this machine:
    "bf16" (autocast) or "fp32". Reports record it, since the numbers depend on it."""
    device = next(model.parameters()).device.type
    if precision not in PRECISIONS:
        raise WorkbenchError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    return "bf16" if device in ("cpu", "cuda") and use_bf16(device, precision) else "fp32"


def precision_context(model, precision: str = "auto"):
    """bf16 autocast where the hardware does bf16 natively (3× faster on CPUs with
    AVX512-BF16), fp32 otherwise or when asked."""
    if resolved_precision(model, precision) == "bf16":
        return torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def left_pad(seqs: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad so every prompt ends at the same column, where decoding starts."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def eos_ids(model, tok) -> list[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if ids is None else ([ids] if isinstance(ids, int) else list(ids))
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    return ids


def valid_until_eos(out_ids: torch.Tensor, eos: list[int]) -> torch.Tensor:
    """Mask of generated positions up to and including the first end-of-sequence token
    (generate pads finished rows, and those pads are not the model's choices)."""
    is_eos = torch.isin(out_ids, torch.tensor(eos, device=out_ids.device)).long()
    return (torch.cumsum(is_eos, 1) - is_eos) == 0


@torch.inference_mode()
def generate(side, prompt_ids: list[list[int]], *, max_new_tokens: int, greedy: bool = True,
             precision: str = "auto", stop_strings: list[str] | None = None):
    """Decode a batch. Returns (output ids B×T, valid mask B×T, raw logits B×T×V) — the
    logits are the distributions the tokens were actually drawn from."""
    model, tok = side.model, side.tokenizer
    device = next(model.parameters()).device
    ids, mask = left_pad(prompt_ids, tok.pad_token_id, device)
    eos = eos_ids(model, tok)
    kwargs = {"do_sample": not greedy, "max_new_tokens": max_new_tokens,
                  "pad_token_id": tok.pad_token_id, "eos_token_id": eos,
                  "return_dict_in_generate": True, "output_logits": True}
    if greedy:  # silence "temperature is set but do_sample=False" from model defaults
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if stop_strings:
        kwargs.update(stop_strings=stop_strings, tokenizer=tok)
    with side.context(), precision_context(model, precision):
        out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    seq = out.sequences[:, ids.shape[1]:]
    logits = torch.stack(out.logits, 1).float()
    return seq, valid_until_eos(seq, eos), logits


@torch.inference_mode()
def teacher_forced_logits(side, prompt_ids: list[list[int]], out_ids: torch.Tensor,
                          out_mask: torch.Tensor, *, precision: str = "auto") -> torch.Tensor:
    """One forward of left-padded prompt + given continuation; logits B×T×V where [:, t]
    is the distribution over continuation token t."""
    model, tok = side.model, side.tokenizer
    device = next(model.parameters()).device
    p_ids, p_mask = left_pad(prompt_ids, tok.pad_token_id, device)
    ids = torch.cat([p_ids, out_ids.to(device)], 1)
    mask = torch.cat([p_mask, out_mask.to(device).long()], 1)
    # Positions count real tokens only, so left padding does not shift them (generate
    # does the same); padded slots get position 0 and are masked anyway.
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    T = out_ids.shape[1]
    with side.context(), precision_context(model, precision):
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos,
                       logits_to_keep=T + 1, use_cache=False).logits
    return logits[:, :T].float()


def token_stats(base_logits: torch.Tensor, tuned_logits: torch.Tensor, tokens: torch.Tensor,
                top_k: int = 5) -> dict[str, torch.Tensor]:
    """Per position (B×T): the chosen token's rank and probability under base, its
    probability under tuned, KL(tuned‖base) and the base's top-k. Vectorised."""
    V = min(base_logits.shape[-1], tuned_logits.shape[-1])  # padded vocab rows never win
    lb, lt = base_logits[..., :V].float(), tuned_logits[..., :V].float()
    logp_b, logp_t = torch.log_softmax(lb, -1), torch.log_softmax(lt, -1)
    tok = tokens.unsqueeze(-1)
    chosen = lb.gather(-1, tok)
    # rank 1 = the base's own top choice; ties count in the token's favour
    rank = (lb > chosen).sum(-1) + 1
    kl = (logp_t.exp() * (logp_t - logp_b)).sum(-1)
    top = logp_b.topk(top_k, -1)
    return {
        "base_rank": rank,
        "base_prob": logp_b.gather(-1, tok).squeeze(-1).exp(),
        "tuned_prob": logp_t.gather(-1, tok).squeeze(-1).exp(),
        "kl": kl,
        "topk_ids": top.indices,
        "topk_probs": top.values.exp(),
    }


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) per position, B×T."""
    return torch.log_softmax(logits.float(), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
