"""Batched decoding and teacher forcing shared by every probe.

Everything here is one batched call per batch of prompts; the per-token maths (ranks,
probabilities, KL, top-k) is vectorised over batch × position × vocabulary."""
from __future__ import annotations

import contextlib
import threading

import torch

from ..config import PRECISIONS
from ..errors import WorkbenchError
from ..models.decoding import decoding_copy as model_decoding_copy
from ..models.device import use_bf16
from ..models.kv_cache import reserved_cache_kwargs
from ..models.sampling import fast_sampling


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


def decoding_copy(side, precision: str = "auto"):
    """The tuned side as it should decode: `side` with a private copy of its model, its PEFT
    adapter merged and, under bf16 autocast, its linear layers stored in bf16
    (workbench.models.decoding says why and what changes); or `side` itself when there is
    nothing to gain, nothing PEFT can merge, or too little memory."""
    from dataclasses import replace

    copied = model_decoding_copy(side.model, merge=not side.adapter_off,
                                 bf16=resolved_precision(side.model, precision) == "bf16")
    return side if copied is None else replace(side, model=copied)


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
    with side.context(), precision_context(model, precision), fast_sampling():
        out = model.generate(input_ids=ids, attention_mask=mask,
                             **reserved_cache_kwargs(model, ids.shape[1] + max_new_tokens), **kwargs)
    seq = out.sequences[:, ids.shape[1]:]
    logits = torch.stack(out.logits, 1).float()
    return seq, valid_until_eos(seq, eos), logits


PACK_WIDTH = 256  # packed rows at least this wide: few rows, short attention spans


def pack(lengths: list[int], width: int) -> list[list[int]]:
    """First-fit decreasing: indices of sequences grouped into rows of at most `width` tokens."""
    rows, room = [], []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        r = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if r is None:
            rows.append([]), room.append(width)
            r = len(rows) - 1
        rows[r].append(i)
        room[r] -= lengths[i]
    return rows


@contextlib.contextmanager
def _project_only(model, rows: torch.Tensor, cols: torch.Tensor, width: int):
    """Make the LM head project only hidden[rows, cols] (as one row of a batch of 1): the
    logits of every other position would be computed and thrown away. Only in this thread:
    the Chat tab decodes with the same model in other threads meanwhile."""
    owner = threading.get_ident()

    def gather(_module, args):
        if threading.get_ident() != owner:
            return None
        h = args[0]
        shift = h.shape[1] - width  # prompt-learning adapters prepend virtual tokens
        return (h[rows, cols + shift].unsqueeze(0), *args[1:])
    handle = model.get_output_embeddings().register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


@torch.inference_mode()
def teacher_forced_token_logits(side, prompt_ids: list[list[int]], continuations: list[list[int]], *,
                                precision: str = "auto") -> torch.Tensor:
    """Logits [N, V] of every continuation token given its prompt and the tokens before it:
    row 0's tokens first, then row 1's, and so on (N = total continuation length), from
    `side` in its context at `precision` (see packed_token_logits)."""
    with side.context(), precision_context(side.model, precision):
        return packed_token_logits(side.model, prompt_ids, continuations, pad_id=side.tokenizer.pad_token_id)


@torch.inference_mode()
def packed_token_logits(model, prompt_ids: list[list[int]], continuations: list[list[int]], *,
                        pad_id: int) -> torch.Tensor:
    """Logits [N, V] (float32) of every continuation token given its prompt and the tokens
    before it, in row order, from `model` as called (any adapter or autocast context is the
    caller's).

    One forward over the sequences packed side by side without padding (position ids restart
    at each sequence, which transformers turns into a block-diagonal causal mask), the LM head
    applied only at the positions read. tests/analysis/test_packed_scoring.py checks the values
    against each sequence run alone."""
    device = next(model.parameters()).device
    seqs = []
    for i, (p, c) in enumerate(zip(prompt_ids, continuations, strict=True)):
        if c and not p:
            raise ValueError(f"row {i}: a continuation needs at least one prompt token to predict from")
        seqs.append(list(p) + list(c))
    n = sum(len(c) for c in continuations)
    if n == 0:
        return torch.zeros((0, model.config.get_text_config().vocab_size), device=device)
    width = max(PACK_WIDTH, max(len(s) for s in seqs))
    rows = pack([len(s) for s in seqs], width)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    where = {}  # sequence → (row, first column)
    for r, members in enumerate(rows):
        col = 0
        for i in members:
            ids[r, col:col + len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
            pos[r, col:col + len(seqs[i])] = torch.arange(len(seqs[i]))
            where[i] = (r, col)
            col += len(seqs[i])
        pos[r, col:] = torch.arange(width - col)  # the tail is one more (ignored) sequence
    g_rows, g_cols = [], []
    for i, (p, c) in enumerate(zip(prompt_ids, continuations)):
        if c:
            r, col = where[i]
            g_rows += [r] * len(c)
            g_cols += range(col + len(p) - 1, col + len(p) - 1 + len(c))
    g_rows, g_cols = torch.tensor(g_rows, device=device), torch.tensor(g_cols, device=device)
    with _project_only(model, g_rows, g_cols, width):
        logits = model(input_ids=ids.to(device), position_ids=pos.to(device), use_cache=False).logits
    return logits[0].float()


def teacher_forced_logits(side, prompt_ids: list[list[int]], out_ids: torch.Tensor,
                          out_mask: torch.Tensor, *, precision: str = "auto") -> torch.Tensor:
    """Logits B×T×V where [:, t] is the distribution over continuation token t, for each row's
    prompt + `out_ids` (valid where `out_mask`, a prefix of each row). Masked positions
    hold zeros."""
    flat = teacher_forced_token_logits(side, prompt_ids, prefix_continuations(out_ids, out_mask),
                                       precision=precision)
    logits = flat.new_zeros((*out_mask.shape, flat.shape[-1]))
    logits[out_mask.bool().to(flat.device)] = flat
    return logits


def prefix_continuations(out_ids: torch.Tensor, out_mask: torch.Tensor) -> list[list[int]]:
    """Each row's valid tokens as a list, where `out_mask` marks a prefix of every row (the
    order of `out_mask.nonzero()`, which is the order teacher_forced_token_logits returns)."""
    out_mask = out_mask.bool().cpu()
    lengths = out_mask.sum(1)
    if not torch.equal(out_mask, torch.arange(out_mask.shape[1]) < lengths[:, None]):
        raise ValueError("out_mask must mark a prefix of each row")
    return [row[:n].tolist() for row, n in zip(out_ids.cpu(), lengths.tolist())]


def token_stats(base_logits: torch.Tensor, tuned_logits: torch.Tensor, tokens: torch.Tensor,
                top_k: int = 5, chunk: int = 64) -> dict[str, torch.Tensor]:
    """Per position (B×T): the chosen token's rank and probability under base, its
    probability under tuned, KL(tuned‖base) and the base's top-k. Vectorised over `chunk`
    positions at a time: each fp32 intermediate is then a few MB the allocator reuses, where
    all ~700 positions of the demo probe at once made each one 130 MB of fresh pages (the
    first call took 0.8–1.3 s instead of 0.15 s on 2 cores)."""
    lead, V = tokens.shape, min(base_logits.shape[-1], tuned_logits.shape[-1])  # padded vocab rows never win
    lb_all, lt_all = base_logits.reshape(-1, base_logits.shape[-1]), tuned_logits.reshape(-1, tuned_logits.shape[-1])
    tok_all = tokens.reshape(-1, 1)
    parts = []
    for i in range(0, max(tok_all.shape[0], 1), chunk):
        lb, lt = lb_all[i:i + chunk, :V].float(), lt_all[i:i + chunk, :V].float()
        logp_b, logp_t = torch.log_softmax(lb, -1), torch.log_softmax(lt, -1)
        tok = tok_all[i:i + chunk]
        chosen = lb.gather(-1, tok)
        top = logp_b.topk(min(top_k, logp_b.shape[-1]), -1)  # at most the whole vocabulary
        parts.append({
            # rank 1 = the base's own top choice; ties count in the token's favour
            "base_rank": (lb > chosen).sum(-1) + 1,
            "base_prob": logp_b.gather(-1, tok).squeeze(-1).exp(),
            "tuned_prob": logp_t.gather(-1, tok).squeeze(-1).exp(),
            "kl": (logp_t.exp() * (logp_t - logp_b)).sum(-1),
            "topk_ids": top.indices,
            "topk_probs": top.values.exp(),
        })
    return {k: torch.cat([p[k] for p in parts]).reshape(*lead, *parts[0][k].shape[1:]) for k in parts[0]}


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) per position, B×T."""
    return torch.log_softmax(logits.float(), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
