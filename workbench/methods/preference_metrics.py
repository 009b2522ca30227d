"""Preference probes logged at every evaluation, next to TRL's own rewards/* and logps/*:

- ranking_accuracy: share of held-out pairs where the *policy itself* gives the better
  response the higher total log-likelihood (Chen et al., "Preference Learning Algorithms
  Do Not Learn Preference Rankings"); ref_ranking_accuracy is the same for the reference.
- kl_to_ref: Monte-Carlo estimate of KL(π‖π_ref) on held-out prompts,
  mean over samples y ~ π(·|x) of log π(y|x) − log π_ref(y|x) (sequence level, nats).
- sample_length: mean number of tokens in those samples (length inflation under DPO).

Pairs come from the raw eval rows in any preference shape: `preference` (chosen vs
rejected), `ranked` (every higher-scored vs lower-scored response) or `unpaired` (desirable
vs undesirable completions that share a prompt)."""
from __future__ import annotations

import contextlib
import json
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F


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
    if isinstance(prompt, list):
        p = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                          return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template(prompt + response, tokenize=True, return_dict=True)["input_ids"]
    else:
        p = tokenizer(prompt)["input_ids"]
        full = tokenizer(prompt + response + (tokenizer.eos_token or ""))["input_ids"]
    n = 0
    while n < min(len(p), len(full)) and p[n] == full[n]:
        n += 1
    return full[:n], full[n:]


@torch.no_grad()
def sequence_logps(model, seqs: list[tuple[list[int], list[int]]], *, max_length: int | None = None,
                   batch_size: int = 8, pad_id: int = 0) -> torch.Tensor:
    """Total log π(response | prompt) for each (prompt_ids, response_ids); right padding."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start:start + batch_size]
        ids, resp_mask = [], []
        for p, r in chunk:
            seq, mask = (p + r), [0] * len(p) + [1] * len(r)
            if max_length:
                seq, mask = seq[:max_length], mask[:max_length]
            ids.append(seq)
            resp_mask.append(mask)
        width = max(len(s) for s in ids)
        input_ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in ids], device=device)
        attn = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in ids], device=device)
        mask = torch.tensor([m + [0] * (width - len(m)) for m in resp_mask], device=device)
        logits = model(input_ids=input_ids, attention_mask=attn, use_cache=False).logits[:, :-1].float()
        token_logps = torch.gather(F.log_softmax(logits, -1), 2, input_ids[:, 1:, None]).squeeze(2)
        out.append((token_logps * mask[:, 1:]).sum(1).cpu())
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[Any], max_new_tokens: int, seed: int = 0):
    """One sampled response per prompt (temperature 1, no top-k/top-p, so the samples come
    from π itself and the KL estimate is unbiased). Returns [(prompt_ids, response_ids)]."""
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    for prompt in prompts:
        if isinstance(prompt, list):
            ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                return_dict=True)["input_ids"]
        else:
            ids = tokenizer(prompt)["input_ids"]
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        seq = model.generate(input_ids=torch.tensor([ids], device=device), max_new_tokens=max_new_tokens,
                             do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        resp = seq[0, len(ids):].tolist()
        if tokenizer.eos_token_id in resp:  # keep the EOS (it is part of the sampled sequence)
            resp = resp[:resp.index(tokenizer.eos_token_id) + 1]
        out.append((ids, resp))
    return out


def preference_probe(policy, reference: Callable[[], contextlib.AbstractContextManager] | None, tokenizer,
                     rows: list[dict], *, max_pairs: int = 64, kl_prompts: int = 8, max_new_tokens: int = 48,
                     max_length: int | None = None, seed: int = 0) -> dict[str, float]:
    """Compute the probes above. `reference()` is a context manager yielding the reference
    model (e.g. the adapter-disabled policy), or None when no reference is available."""
    was_training = policy.training
    policy.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    metrics: dict[str, float] = {}
    try:
        pairs = eval_pairs(rows)[:max_pairs] if max_pairs else []
        if pairs:
            seqs = []
            for prompt, good, bad in pairs:
                seqs += [encode(tokenizer, prompt, good), encode(tokenizer, prompt, bad)]
            lp = sequence_logps(policy, seqs, max_length=max_length, pad_id=pad)
            metrics["ranking_accuracy"] = (lp[0::2] > lp[1::2]).float().mean().item()
            if reference is not None:
                with reference() as ref:
                    rlp = sequence_logps(ref, seqs, max_length=max_length, pad_id=pad)
                metrics["ref_ranking_accuracy"] = (rlp[0::2] > rlp[1::2]).float().mean().item()
                # idealised reward accuracy on the same held-out pairs (logratio margin > 0)
                metrics["heldout_reward_accuracy"] = (((lp - rlp)[0::2] - (lp - rlp)[1::2]) > 0).float().mean().item()
        prompts = eval_prompts(rows, kl_prompts) if kl_prompts else []
        if prompts:
            samples = sample_responses(policy, tokenizer, prompts, max_new_tokens, seed=seed)
            metrics["sample_length"] = sum(len(r) for _, r in samples) / len(samples)
            if reference is not None:
                lp = sequence_logps(policy, samples, pad_id=pad)
                with reference() as ref:
                    rlp = sequence_logps(ref, samples, pad_id=pad)
                metrics["kl_to_ref"] = (lp - rlp).mean().item()
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

    def _push_eval_metrics(self, values: dict[str, float]) -> None:
        if hasattr(self, "_metrics"):           # DPO/KTO-style trainers: log() averages and prefixes eval_
            for k, v in values.items():
                self._metrics["eval"][k].append(v)
        elif hasattr(self, "_stored_metrics"):  # CPO/ORPO-style: keys carry their prefix already
            for k, v in values.items():
                self._stored_metrics["eval"][f"eval_{k}"].append(v)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        if eval_dataset is None and metric_key_prefix == "eval" and self.probe_rows:
            model = self.accelerator.unwrap_model(self.model)
            values = preference_probe(model, self.probe_reference, self.processing_class, self.probe_rows,
                                      seed=self.args.seed + self.state.global_step, **self.probe_args)
            self._push_eval_metrics(values)
        return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys,
                                metric_key_prefix=metric_key_prefix)
