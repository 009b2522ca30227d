"""Preference probes logged at every evaluation, next to TRL's own rewards/* and logps/*:

- ranking_accuracy: share of held-out pairs where the *policy itself* gives the better
  response the higher total log-likelihood (Chen et al., "Preference Learning Algorithms
  Do Not Learn Preference Rankings"); ref_ranking_accuracy is the same for the reference.
- heldout_reward_accuracy: share of held-out pairs whose implicit DPO reward margin
  (log π/π_ref of chosen minus that of rejected) is positive — TRL's rewards/accuracies on
  the eval pairs. It is a *reward* accuracy, not the idealised ranking accuracy.
- idealised_ranking_accuracy (with `ideal_beta`): the ranking accuracy of the exact optimum
  of the DPO/RLHF objective, π*(y|x) ∝ π_ref(y|x)·exp(r*(x,y)/β) with Bradley–Terry
  preferences α = σ(r*(y_w) − r*(y_l)) (Chen et al., Thm. 3.1): π* ranks a pair correctly
  iff π_ref(y_w|x)/π_ref(y_l|x) > ((1 − α)/α)^(1/β), i.e.
  log π_ref(y_w|x) − log π_ref(y_l|x) + logit(α)/β > 0. α(x, y_w, y_l) is the share of
  raters preferring y_w: a row's `alpha` column when it has one, else the constant
  `ideal_alpha` (our reading: the paper takes α from multi-rater data; a single-label
  dataset does not determine it). alignment_gap = idealised − observed ranking accuracy.
- kl_to_ref: KL(π‖π_ref) in nats per sequence on held-out prompts, from one sample
  y ~ π(·|x) per prompt, computed exactly over the vocabulary at every sampled position:
  Σ_t KL(π(·|x,y<t) ‖ π_ref(·|x,y<t)). Its expectation is the sequence-level KL (chain
  rule), every term is ≥ 0, and kl_to_ref_se is its standard error over the sampled
  sequences (std/√n, present when n ≥ 2). A plain mean of log π(y|x) − log π_ref(y|x) has
  the same expectation but can come out negative on a few samples.
- sample_length: mean number of tokens in those samples (length inflation under DPO).

Pairs come from the raw eval rows in any preference shape: `preference` (chosen vs
rejected), `ranked` (every higher-scored vs lower-scored response) or `unpaired` (desirable
vs undesirable completions that share a prompt)."""
from __future__ import annotations

import contextlib
import json
import math
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from transformers import LogitsProcessor, LogitsProcessorList

from ..analysis.scoring import packed_token_logits
from ..models.decoding import eval_decoder
from ..models.kv_cache import reserved_cache_kwargs
from ..training.samples import Sampler, prompt_token_ids
from ._preference import adapter_is_identity


def _key(prompt: Any) -> str:
    return json.dumps(prompt, sort_keys=True)


def eval_pairs(rows: Iterable[dict]) -> list[tuple[Any, Any, Any]]:
    """(prompt, better, worse) triples from eval rows of any preference format."""
    pairs, unpaired = [], {}
    for row in rows:
        if "chosen" in row and "rejected" in row:
            pairs.append((row["prompt"], row["chosen"], row["rejected"]))
        elif "responses" in row and "scores" in row:
            resp, sc = row["responses"], row["scores"]
            pairs += [(row["prompt"], resp[i], resp[j]) for i in range(len(resp)) for j in range(len(resp))
                      if sc[i] > sc[j]]
        elif "label" in row and "completion" in row:
            group = unpaired.setdefault(_key(row["prompt"]), (row["prompt"], [], []))
            group[1 if row["label"] else 2].append(row["completion"])
    for prompt, good, bad in unpaired.values():
        pairs += [(prompt, g, b) for g in good for b in bad]
    return pairs


def eval_pair_alphas(rows: Iterable[dict], default: float | None) -> list[float | None]:
    """α (share of raters preferring the better response) for each pair of `eval_pairs(rows)`,
    in the same order: a preference row's `alpha` value, else `default`."""
    alphas, unpaired = [], {}
    for row in rows:
        if "chosen" in row and "rejected" in row:
            a = row.get("alpha")
            alphas.append(float(a) if a is not None else default)
        elif "responses" in row and "scores" in row:
            sc = row["scores"]
            alphas += [default for i in range(len(sc)) for j in range(len(sc)) if sc[i] > sc[j]]
        elif "label" in row and "completion" in row:
            group = unpaired.setdefault(_key(row["prompt"]), [0, 0])
            group[0 if row["label"] else 1] += 1
    for good, bad in unpaired.values():
        alphas += [default] * (good * bad)
    return alphas


def idealised_ranking_accuracy(ref_chosen, ref_rejected, alpha, beta: float) -> float:
    """Chen et al., "Preference Learning Algorithms Do Not Learn Preference Rankings",
    Thm. 3.1: the share of pairs the optimum of the DPO/RLHF objective ranks correctly,
    1[log π_ref(y_w|x) − log π_ref(y_l|x) > (1/β)·log((1 − α)/α)]. `ref_*`: total
    response log-probs under the reference; `alpha`: one value or one per pair (α = 1 gives
    an infinitely large true margin, so the pair is always ranked correctly)."""
    ref_chosen = torch.as_tensor(ref_chosen, dtype=torch.float64)
    ref_rejected = torch.as_tensor(ref_rejected, dtype=torch.float64)
    alpha = torch.as_tensor(alpha, dtype=torch.float64).expand_as(ref_chosen)
    if ref_chosen.numel() == 0:
        raise ValueError("idealised_ranking_accuracy: no pairs")
    ideal_margin = (ref_chosen - ref_rejected) + torch.logit(alpha) / beta  # log π*(y_w)/π*(y_l)
    return (ideal_margin > 0).double().mean().item()


def eval_prompts(rows: Iterable[dict], limit: int) -> list[Any]:
    """Distinct prompts, in order, at most `limit`."""
    seen, out = set(), []
    for row in rows:
        k = _key(row["prompt"])
        if k not in seen:
            seen.add(k)
            out.append(row["prompt"])
        if len(out) >= limit:
            break
    return out


def encode(tokenizer, prompt: Any, response: Any) -> tuple[list[int], list[int]]:
    """Token ids of prompt and response the way TRL builds them (chat template for
    conversations; the response starts where prompt and prompt+response diverge)."""
    p = prompt_token_ids(tokenizer, prompt)
    if isinstance(prompt, list):
        full = tokenizer.apply_chat_template(prompt + response, tokenize=True, return_dict=True)["input_ids"]
    else:
        full = tokenizer(prompt + response + (tokenizer.eos_token or ""))["input_ids"]
    n = 0
    while n < min(len(p), len(full)) and p[n] == full[n]:
        n += 1
    return full[:n], full[n:]


@torch.no_grad()
def sequence_logps(model, seqs: list[tuple[list[int], list[int]]], *, max_length: int | None = None,
                   pad_id: int = 0) -> torch.Tensor:
    """Total log π(response | prompt) for each (prompt_ids, response_ids), the sequence cut at
    `max_length` tokens (a response cut away entirely counts 0). The sequences are scored packed
    without padding, the LM head only at the response positions, a chunk at a time."""
    prompts, responses = [], []
    for p, r in seqs:
        kept = (p + r)[:max_length] if max_length else p + r
        cut = max(len(p), 1)  # with no prompt, the first token is not predicted from anything
        prompts.append(kept[:cut])
        responses.append(kept[cut:])
    out = []
    for chunk in _chunks(responses, CHUNK_TOKENS):
        logits = packed_token_logits(model, [prompts[i] for i in chunk], [responses[i] for i in chunk], pad_id=pad_id)
        targets = torch.tensor([t for i in chunk for t in responses[i]], dtype=torch.long, device=logits.device)
        token_logps = F.log_softmax(logits, -1).gather(1, targets[:, None]).squeeze(1).cpu()
        out += [part.sum() for part in token_logps.split([len(responses[i]) for i in chunk])]
    return torch.stack(out) if out else torch.zeros(0)


CHUNK_TOKENS = 512  # response positions per packed forward: bounds the [N, V] logits


def _chunks(responses: list[list[int]], tokens: int) -> list[list[int]]:
    """Consecutive indices grouped so each group holds about `tokens` response tokens."""
    groups, current, count = [], [], 0
    for i, r in enumerate(responses):
        current.append(i)
        count += len(r)
        if count >= tokens:
            groups.append(current)
            current, count = [], 0
    return groups + ([current] if current else [])


@torch.no_grad()
def sequence_kl(policy, reference: Callable[[], contextlib.AbstractContextManager],
                seqs: list[tuple[list[int], list[int]]], *, pad_id: int = 0) -> torch.Tensor:
    """Σ_t KL(π(·|x,y<t) ‖ π_ref(·|x,y<t)) over the response positions of each
    (prompt_ids, response_ids), exact over the vocabulary (nats, one value per sequence,
    each ≥ 0). `reference()` is a context manager yielding the reference model.

    Both models score the sequences packed without padding, the LM head only at the response
    positions (workbench.analysis.scoring.packed_token_logits), a chunk of sequences at a time."""
    out = [_chunk_kl(policy, reference, [seqs[i] for i in chunk], pad_id)
           for chunk in _chunks([r for _, r in seqs], CHUNK_TOKENS)]
    return torch.cat(out) if out else torch.zeros(0)


def _chunk_kl(policy, reference, seqs, pad_id: int) -> torch.Tensor:
    prompts, responses = [p for p, _ in seqs], [r for _, r in seqs]
    # float64: early in training the KL is ~1e-4 nats, where float32 rounding of log p − log q is a few %
    logp = F.log_softmax(packed_token_logits(policy, prompts, responses, pad_id=pad_id).double(), -1)
    with reference() as ref:
        logq = F.log_softmax(packed_token_logits(ref, prompts, responses, pad_id=pad_id).double(), -1)
    per_pos = (logp.exp() * (logp - logq)).sum(-1).clamp_min(0.0)  # ≥ 0 up to rounding; clamp that
    return torch.stack([part.sum() for part in per_pos.cpu().split([len(r) for r in responses])])


def mean_and_se(values: torch.Tensor) -> tuple[float, float | None]:
    """Mean and standard error of the mean (sample std / √n; None when n < 2)."""
    values = values.double()
    n = values.numel()
    se = (values.std(unbiased=True) / math.sqrt(n)).item() if n >= 2 else None
    return values.mean().item(), se


class _ArgmaxRows(LogitsProcessor):
    """In a sampling `generate`, the marked rows decode greedily: every logit but the row's
    argmax becomes −inf, so the sampled token is that argmax with probability 1 (the first
    one on ties, as greedy search takes)."""

    def __init__(self, rows: torch.Tensor):
        self.rows = rows  # bool, one per batch row

    def __call__(self, input_ids, scores):
        best = torch.full_like(scores, -math.inf).scatter_(1, scores.argmax(-1, keepdim=True), 0.0)
        return torch.where(self.rows[:, None].to(scores.device), best, scores)


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[Any], max_new_tokens: int, seed: int = 0,
                     batch_size: int = 8, greedy: tuple[list[list[int]], int] | None = None):
    """One sampled response per prompt (temperature 1, no top-k/top-p, so the samples come
    from π itself and the KL estimate is unbiased), `batch_size` rows per `generate` call
    (left padding). Returns [(prompt_ids, response_ids)].

    `greedy`: (prompt token ids, max new tokens) of greedy answers wanted at the same time (the
    run samples): they ride in the same `generate` calls, after the sampled rows — a decode
    step reads every weight whatever the batch, so one call of n + m rows costs about what
    one of n does — and their responses follow the sampled ones in the returned list."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = [(prompt_token_ids(tokenizer, p), max_new_tokens, False) for p in prompts]
    if greedy is not None:
        rows += [(ids, greedy[1], True) for ids in greedy[0]]
    torch.manual_seed(seed)
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        width = max(len(ids) for ids, _, _ in chunk)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids, _, _ in chunk], device=device)
        attn = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _, _ in chunk], device=device)
        argmax = torch.tensor([g for _, _, g in chunk])
        processors = LogitsProcessorList([_ArgmaxRows(argmax)] if argmax.any() else [])
        new = max(n for _, n, _ in chunk)
        seq = model.generate(input_ids=input_ids, attention_mask=attn, max_new_tokens=new,
                             **reserved_cache_kwargs(model, width + new),
                             do_sample=True, temperature=1.0, top_k=0, top_p=1.0, pad_token_id=pad,
                             logits_processor=processors)
        for (ids, n, _), row in zip(chunk, seq[:, width:].tolist()):
            row = row[:n]  # a row asked for fewer tokens than the longest in its batch: its first n
            if tokenizer.eos_token_id in row:  # keep the EOS (part of the sample); drop the padding after it
                row = row[:row.index(tokenizer.eos_token_id) + 1]
            out.append((ids, row))
    return out


def preference_probe(policy, reference: Callable[[], contextlib.AbstractContextManager] | None, tokenizer,
                     rows: list[dict], *, max_pairs: int = 64, kl_prompts: int = 4, max_new_tokens: int = 32,
                     max_length: int | None = None, seed: int = 0, ideal_beta: float | None = None,
                     ideal_alpha: float | None = None, ref_cache: dict | None = None,
                     pair_logps: tuple[torch.Tensor, torch.Tensor | None] | None = None,
                     decoder: Callable[[], tuple[Any, Callable]] | None = None,
                     identical: bool = False, run_samples: Sampler | None = None,
                     step: int = 0) -> dict[str, float]:
    """Compute the probes above. `reference()` is a context manager yielding the reference
    model (e.g. the adapter-disabled policy), or None when no reference is available.
    `ideal_beta`: the β of a DPO/RLHF objective whose optimum is π_ref·exp(r/β) — given,
    the idealised ranking accuracy and the alignment gap are reported too (for pairs
    without an `alpha` column, α = `ideal_alpha`; with neither, they are skipped).
    `ref_cache`: a dict kept across calls while the reference is frozen; the reference's
    log-probabilities of the held-out pairs are computed once into it (they cannot change).
    `pair_logps`: (policy, reference or None) total log-probs of every pair of `rows`, chosen and
    rejected interleaved, when the caller already has them (DPO's eval loss scores the same
    pairs): the pairs are then not run again. `decoder()`: (model, context) to sample from when
    the caller has a faster copy of the policy (workbench.models.decoding.eval_decoder), asked
    for only when there is something to sample; the KL is computed with `policy` itself.
    `identical`: the caller knows the policy computes bit for bit what the reference computes
    (`_preference.adapter_is_identity`), so every KL term is exactly 0 and is not computed.
    `run_samples`: the run's greedy samples, decoded in the same `generate` calls as the KL
    samples when there are any and handed to it for `step` (`Sampler.keep`)."""
    was_training = policy.training
    policy.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    metrics: dict[str, float] = {}
    try:
        rows = list(rows)
        all_pairs = eval_pairs(rows)
        pairs = all_pairs[:max_pairs] if max_pairs else []
        alphas = eval_pair_alphas(rows, ideal_alpha)[:len(pairs)]
        if pairs:
            if pair_logps is not None and len(pair_logps[0]) == 2 * len(all_pairs):  # the same pairs, in order
                lp, rlp = (x[:2 * len(pairs)] if x is not None else None for x in pair_logps)
            else:
                seqs = []
                for prompt, good, bad in pairs:
                    seqs += [encode(tokenizer, prompt, good), encode(tokenizer, prompt, bad)]
                lp = sequence_logps(policy, seqs, max_length=max_length, pad_id=pad)
                rlp = None
            metrics["ranking_accuracy"] = (lp[0::2] > lp[1::2]).float().mean().item()
            if reference is not None:
                if rlp is None:
                    key = ("pair_logps", max_length, tuple(tuple(p + r) for p, r in seqs))
                    rlp = ref_cache.get(key) if ref_cache is not None else None
                if rlp is None:
                    with reference() as ref:
                        rlp = sequence_logps(ref, seqs, max_length=max_length, pad_id=pad)
                    if ref_cache is not None:
                        ref_cache[key] = rlp
                metrics["ref_ranking_accuracy"] = (rlp[0::2] > rlp[1::2]).float().mean().item()
                # implicit-reward accuracy on the same held-out pairs (log-ratio margin > 0): a reward
                # accuracy, which is not the idealised ranking accuracy below
                metrics["heldout_reward_accuracy"] = (((lp - rlp)[0::2] - (lp - rlp)[1::2]) > 0).float().mean().item()
                if ideal_beta is not None and all(a is not None for a in alphas):
                    ideal = idealised_ranking_accuracy(rlp[0::2], rlp[1::2], alphas, ideal_beta)
                    metrics["idealised_ranking_accuracy"] = ideal
                    metrics["alignment_gap"] = ideal - metrics["ranking_accuracy"]
        prompts = eval_prompts(rows, kl_prompts) if kl_prompts else []
        if prompts:
            model, context = (policy, contextlib.nullcontext) if decoder is None else decoder()
            greedy = None
            if run_samples is not None and run_samples.prompts:
                greedy = (run_samples.prompt_ids(), run_samples.max_new_tokens)
            with context():
                samples = sample_responses(model, tokenizer, prompts, max_new_tokens, seed=seed, greedy=greedy)
            if greedy is not None:
                run_samples.keep(step, [r for _, r in samples[len(prompts):]])
                samples = samples[:len(prompts)]
            metrics["sample_length"] = sum(len(r) for _, r in samples) / len(samples)
            if reference is not None:
                kls = torch.zeros(len(samples)) if identical else sequence_kl(policy, reference, samples, pad_id=pad)
                kl, se = mean_and_se(kls)
                metrics["kl_to_ref"] = kl
                if se is not None:
                    metrics["kl_to_ref_se"] = se
    finally:
        if was_training:
            policy.train()
    return metrics


class PreferenceProbeMixin:
    """Mix into a TRL trainer: at every evaluation on the trainer's own eval set, run
    `preference_probe` and log its values with the eval record (eval_ranking_accuracy, …).
    Set `probe_rows`, `probe_args` and `probe_reference` after construction."""

    probe_rows: list[dict] = []
    probe_args: dict = {}
    probe_reference: Callable | None = None
    run_samples: Sampler | None = None  # the run's samples (set by the engine): decoded beside the KL samples

    def _push_eval_metrics(self, values: dict[str, float]) -> None:
        if hasattr(self, "_metrics"):           # DPO/KTO-style trainers: log() averages and prefixes eval_
            for k, v in values.items():
                self._metrics["eval"][k].append(v)
        elif hasattr(self, "_stored_metrics"):  # CPO/ORPO-style: keys carry their prefix already
            for k, v in values.items():
                self._stored_metrics["eval"][f"eval_{k}"].append(v)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        self._probe_pending = eval_dataset is None and metric_key_prefix == "eval" and bool(self.probe_rows)
        try:
            return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys,
                                    metric_key_prefix=metric_key_prefix)
        finally:
            self._probe_pending = False

    def evaluation_loop(self, *args, **kwargs):
        """TRL's eval loss first, then the probes (before the eval record is logged), so a
        trainer whose loss pass scores the held-out pairs can hand the probes those log-probs
        (`eval_pair_logps`, one (policy chosen, policy rejected, ref chosen, ref rejected)
        per eval batch) instead of the probes running the pairs again."""
        self.eval_pair_logps = []
        output = super().evaluation_loop(*args, **kwargs)
        if getattr(self, "_probe_pending", False):
            self._probe_pending = False
            model = self.accelerator.unwrap_model(self.model)
            # the reference is frozen for this trainer's life (TRL's sync_ref_model would move it)
            cache = None if getattr(self.args, "sync_ref_model", False) else self.__dict__.setdefault("_ref_cache", {})
            step, bf16 = self.state.global_step, bool(self.args.bf16)
            identical = getattr(self, "probe_reference_is_base", False) and adapter_is_identity(model)
            values = preference_probe(model, self.probe_reference, self.processing_class, self.probe_rows,
                                      seed=self.args.seed + self.state.global_step, ref_cache=cache,
                                      pair_logps=self._captured_pair_logps(), identical=identical,
                                      decoder=lambda: eval_decoder(model, step=step, bf16=bf16),
                                      run_samples=self.run_samples, step=step, **self.probe_args)
            self._push_eval_metrics(values)
        return output

    def _captured_pair_logps(self):
        """(policy, reference) log-probs of every eval pair, chosen/rejected interleaved, from the
        eval loss pass; None when the pass did not record them."""
        if not self.eval_pair_logps:
            return None
        pc, pr, rc, rr = (torch.cat([b[i].detach().float().cpu() for b in self.eval_pair_logps]) for i in range(4))
        return torch.stack([pc, pr], 1).flatten(), torch.stack([rc, rr], 1).flatten()
