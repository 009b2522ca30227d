"""Sample k completions per prompt from the current policy: left-padded batches, one
`generate` call per batch with `num_return_sequences=k` (KV cache on), temperature/top-p,
a seed, a tqdm bar and tokens/s. Greedy decoding (k=1, temperature 0) is the evaluation
path."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import WorkbenchError
from ..models.kv_cache import reserved_cache_kwargs


@dataclass
class Group:
    """One prompt, its k sampled completions and (after scoring) their rewards."""
    prompt: list[dict]                 # chat messages
    completions: list[str]
    lengths: list[int]                 # generated tokens per completion (up to and incl. EOS)
    row: dict[str, Any] = field(default_factory=dict)  # the source row: answer, task, …
    rewards: list[float] = field(default_factory=list)


@dataclass
class SampleStats:
    prompts: int
    completions: int
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def _messages(prompt) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m for m in prompt):
        return list(prompt)
    raise WorkbenchError(f"sampler: a prompt must be text or a list of chat messages, got {type(prompt).__name__}")


def _generated_lengths(new_tokens: torch.Tensor, eos_ids: set[int]) -> list[int]:
    """Tokens up to and including the first EOS (the rest is padding)."""
    out = []
    for seq in new_tokens.tolist():
        n = next((i + 1 for i, t in enumerate(seq) if t in eos_ids), len(seq))
        out.append(n)
    return out


@torch.no_grad()
def sample(model, tokenizer, rows: Sequence[dict], *, k: int = 4, temperature: float = 1.0, top_p: float = 1.0,
           max_new_tokens: int = 64, batch_size: int = 8, seed: int = 0, progress: bool = True,
           desc: str = "sampling") -> tuple[list[Group], SampleStats]:
    """k completions for each row's `prompt`. temperature 0 means greedy (then k must be 1).
    batch_size counts prompts per generate call (each expands to k sequences)."""
    if k < 1 or max_new_tokens < 1 or batch_size < 1:
        raise WorkbenchError(f"sampler: k, max_new_tokens and batch_size must be >= 1 "
                             f"(got {k}, {max_new_tokens}, {batch_size})")
    greedy = temperature <= 0
    if greedy and k > 1:
        raise WorkbenchError(f"sampler: k={k} identical greedy samples; use temperature > 0 to sample several")
    if not 0 < top_p <= 1:
        raise WorkbenchError(f"sampler: top_p must be in (0, 1], got {top_p}")
    rows = list(rows)
    eos = tokenizer.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) | set(
        [model.generation_config.eos_token_id] if isinstance(model.generation_config.eos_token_id, int)
        else model.generation_config.eos_token_id or [])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids))
    gen_kwargs = dict(max_new_tokens=max_new_tokens, num_return_sequences=k, pad_token_id=pad, use_cache=True,
                      do_sample=not greedy)
    if not greedy:
        gen_kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    else:  # the model's generation_config may carry sampling defaults; greedy ignores them
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)

    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    torch.manual_seed(seed)
    groups: list[Group] = []
    tokens, started = 0, time.time()
    bar = tqdm(total=len(rows), desc=desc, unit="prompt", disable=not progress, leave=False)
    try:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            texts = [tokenizer.apply_chat_template(_messages(r["prompt"]), add_generation_prompt=True, tokenize=False)
                     for r in batch]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            out = model.generate(**enc, **gen_kwargs,
                                 **reserved_cache_kwargs(model, enc["input_ids"].shape[1] + max_new_tokens))
            new = out[:, enc["input_ids"].shape[1]:]
            lengths = _generated_lengths(new, eos_ids)
            texts_out = tokenizer.batch_decode(new, skip_special_tokens=True)
            for i, row in enumerate(batch):
                sl = slice(i * k, (i + 1) * k)
                groups.append(Group(prompt=_messages(row["prompt"]), completions=[t.strip() for t in texts_out[sl]],
                                    lengths=lengths[sl], row=dict(row)))
            tokens += sum(lengths)
            bar.update(len(batch))
            bar.set_postfix(tok_s=f"{tokens / max(time.time() - started, 1e-9):.0f}")
    finally:
        bar.close()
        tokenizer.padding_side = side
        if was_training:
            model.train()
    stats = SampleStats(prompts=len(rows), completions=len(rows) * k, tokens=tokens, seconds=time.time() - started)
    return groups, stats
