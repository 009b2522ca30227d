"""Per-step logit transforms as transformers LogitsProcessors, so they run inside
`model.generate` with its KV cache, batching, `num_return_sequences` and sampling warpers
(custom processors run before temperature/top-k/top-p).

A processor that needs a second model (or the same model on another prompt) keeps that
model's own KV cache in an `AuxStream`, fed each step with the tokens generate emitted."""
from __future__ import annotations

import torch
from transformers import LogitsProcessor

from ..analysis.scoring import left_pad, precision_context

NEG_INF = float("-inf")


class AuxStream:
    """Another model following the target's generated tokens from its own prompt.

    prompt_ids: this model's own rendering of each prompt (unpadded); target_width: the
    padded width of the target's prompt (generated tokens start there). Rows of a batch
    that generate expanded (num_return_sequences) are matched by repeat_interleave."""

    def __init__(self, side, prompt_ids: list[list[int]], target_width: int, precision: str = "auto"):
        self.side = side
        device = next(side.model.parameters()).device
        self.ids, self.mask = left_pad(prompt_ids, side.tokenizer.pad_token_id, device)
        self.target_width = target_width
        self.precision = precision
        self.cache = None
        self.seen = 0
        self.forwards = 0

    @torch.inference_mode()
    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The next-token logits (B×V, float32) after the target's tokens so far."""
        gen = input_ids[:, self.target_width:].to(self.ids.device)
        if self.cache is None:
            k = input_ids.shape[0] // self.ids.shape[0]
            if k > 1:
                self.ids, self.mask = self.ids.repeat_interleave(k, 0), self.mask.repeat_interleave(k, 0)
            feed = torch.cat([self.ids, gen], 1)
            self.mask = torch.cat([self.mask, torch.ones_like(gen)], 1)
            pos = (self.mask.cumsum(1) - 1).clamp(min=0)
        else:
            feed = gen[:, self.seen:]
            self.mask = torch.cat([self.mask, torch.ones_like(feed)], 1)
            pos = (self.mask.cumsum(1) - 1)[:, -feed.shape[1]:]
        self.seen = gen.shape[1]
        model = self.side.model
        if self.cache is None:
            from transformers import DynamicCache
            self.cache = DynamicCache(config=_base(model).config)
        with self.side.context(), precision_context(model, self.precision):
            out = model(input_ids=feed, attention_mask=self.mask, position_ids=pos,
                        **{_cache_kw(model): self.cache}, use_cache=True, logits_to_keep=1)
        self.forwards += 1
        return out.logits[:, -1].float()


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _cache_kw(model) -> str:
    """transformers 5.x renames forward's `past_key_values` to `cache` (model by model)."""
    import inspect
    return "cache" if "cache" in inspect.signature(_base(model).forward).parameters else "past_key_values"


def _aligned(scores: torch.Tensor, other: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Common width of two logit rows (embedding matrices may be padded past the vocabulary)."""
    V = min(scores.shape[-1], other.shape[-1])
    return V, other[:, :V].to(scores.device)


class ProxyTuningProcessor(LogitsProcessor):
    """logits_target + α·(logits_expert − logits_anti_expert) (Liu et al., 2024)."""

    def __init__(self, expert: AuxStream, anti: AuxStream, alpha: float = 1.0):
        self.expert, self.anti, self.alpha = expert, anti, alpha

    def __call__(self, input_ids, scores):
        e, a = self.expert.logits(input_ids), self.anti.logits(input_ids)
        V, delta = _aligned(scores, e - a.to(e.device))
        out = scores.clone()
        out[:, :V] += self.alpha * delta
        out[:, V:] = NEG_INF
        return out


class InstructiveProcessor(LogitsProcessor):
    """z − ε·z_noisy: logits under the real instruction minus ε times the logits of the same
    model under a noisy instruction (Kim et al., 2024)."""

    def __init__(self, noisy: AuxStream, epsilon: float):
        self.noisy, self.epsilon = noisy, epsilon

    def __call__(self, input_ids, scores):
        V, z_noisy = _aligned(scores, self.noisy.logits(input_ids))
        out = scores.clone()
        out[:, :V] -= self.epsilon * z_noisy
        return out


class ContrastiveProcessor(LogitsProcessor):
    """Contrastive generation (CGE): log p_tuned − log p_base over the plausible set
    {x: p_tuned(x) ≥ α·max p_tuned}, −inf elsewhere; greedy decoding takes its argmax."""

    def __init__(self, base: AuxStream, alpha: float):
        self.base, self.alpha = base, alpha

    def __call__(self, input_ids, scores):
        V, lb = _aligned(scores, self.base.logits(input_ids))
        lt = torch.log_softmax(scores[:, :V].float(), -1)
        lb = torch.log_softmax(lb, -1)
        plausible = lt >= lt.max(-1, keepdim=True).values + torch.log(torch.tensor(self.alpha))
        out = torch.full_like(scores, NEG_INF)
        out[:, :V] = torch.where(plausible, lt - lb, torch.tensor(NEG_INF, device=scores.device))
        return out


class LookBackProcessor(LogitsProcessor):
    """Look-back decoding (Xu et al., 2023), our reading: keep every step's next-token
    distribution p_j. When the current one is within `kl_threshold` (KL) of an earlier
    step's, look one token ahead for each of the top-`candidates` tokens and drop those whose
    next distribution is also that close to some p_j; if every candidate is close, keep
    only the one farthest from the history. Tokens outside the candidates are dropped at
    such steps."""

    def __init__(self, side, prompt_mask: torch.Tensor, target_width: int, kl_threshold: float,
                 candidates: int, precision: str = "auto"):
        self.side, self.prompt_mask, self.width = side, prompt_mask, target_width
        self.kl_threshold, self.k, self.precision = kl_threshold, candidates, precision
        self.history: torch.Tensor | None = None     # B×t×V log-probs
        self.rejected: torch.Tensor | None = None    # per row: candidates dropped
        self.triggered: torch.Tensor | None = None   # per row: steps that looked like a repeat
        self.forwards = 0
        self.lookahead_tokens = 0                    # token-forwards spent looking ahead

    @staticmethod
    def _min_kl(logp: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
        """min over history steps j of KL(p ‖ p_j): logp …×V, hist B×t×V (broadcast on B)."""
        p = logp.exp()
        # KL(p‖q_j) = Σ p log p − Σ p log q_j
        neg_ent = (p * logp).sum(-1, keepdim=True)                   # …×1
        cross = torch.einsum("b...v,btv->b...t", p, hist)            # …×t
        return (neg_ent - cross).min(-1).values

    @torch.inference_mode()
    def __call__(self, input_ids, scores):
        V = scores.shape[-1]
        logp = torch.log_softmax(scores.float(), -1)
        if self.history is None:
            self.history = logp[:, None]
            self.rejected = torch.zeros(scores.shape[0], dtype=torch.long)
            self.triggered = torch.zeros(scores.shape[0], dtype=torch.long)
            return scores
        hist = self.history
        close = self._min_kl(logp, hist) < self.kl_threshold        # B
        out = scores
        if close.any():
            self.triggered += close.long().cpu()
            rows = close.nonzero(as_tuple=True)[0]
            k = min(self.k, V)
            cand = scores[rows].topk(k, -1).indices                  # R×k
            nxt = self._lookahead(input_ids[rows], rows, cand)        # R×k×V log-probs
            h = torch.cat([hist[rows], logp[rows, None]], 1)         # R×(t+1)×V
            far = self._min_kl(nxt, h)                                # R×k
            ok = far >= self.kl_threshold
            none_ok = ~ok.any(-1)
            ok[none_ok, far[none_ok].argmax(-1)] = True
            self.rejected.index_add_(0, rows.cpu(), (~ok).sum(-1).cpu())
            keep = torch.full_like(scores[rows], NEG_INF)
            keep.scatter_(1, cand, torch.where(ok, scores[rows].gather(1, cand),
                                               torch.tensor(NEG_INF, device=scores.device)))
            out = scores.clone()
            out[rows] = keep
        self.history = torch.cat([hist, logp[:, None]], 1)
        return out

    def _lookahead(self, ids: torch.Tensor, rows: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """Next-token log-probs after appending each candidate (one batched forward)."""
        R, k = cand.shape
        pm = self.prompt_mask
        if pm.shape[0] != self.history.shape[0]:   # num_return_sequences expanded the batch
            pm = pm.repeat_interleave(self.history.shape[0] // pm.shape[0], 0)
        mask = torch.cat([pm[rows.to(pm.device)], torch.ones(R, ids.shape[1] - self.width + 1, dtype=pm.dtype,
                                                              device=pm.device)], 1)
        seq = torch.cat([ids.repeat_interleave(k, 0), cand.reshape(-1, 1)], 1)
        mask = mask.repeat_interleave(k, 0)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        self.lookahead_tokens += seq.numel()
        model = self.side.model
        with self.side.context(), precision_context(model, self.precision):
            logits = model(input_ids=seq, attention_mask=mask, position_ids=pos, use_cache=False,
                           logits_to_keep=1).logits[:, -1].float()
        self.forwards += 1
        return torch.log_softmax(logits[:, :self.history.shape[-1]], -1).reshape(R, k, -1)
