"""Response loss under a small causal LM, the signal behind `perplexity`, `ifd` and the
k-means usefulness re-weighting. Rows are sorted by length and batched (little padding),
with a tqdm progress bar. The instruction is wrapped in the model's chat template; the
"without instruction" variant uses the same template with an empty user turn, so both
losses cover exactly the same response tokens."""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


@functools.lru_cache(maxsize=2)
def load_scorer(name: str, device: str | None = None):
    from ..models import load_model

    model, tok = load_model(name, device=device)
    model.eval()
    return model, tok


def _prefix(tok, instruction: str | None) -> str:
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template([{"role": "user", "content": instruction or ""}],
                                       add_generation_prompt=True, tokenize=False)
    start = tok.bos_token or tok.eos_token or ""
    return f"{start}{instruction}\n" if instruction else start


def encode(tok, instruction: str | None, response: str, max_length: int) -> tuple[list[int], int]:
    """Token ids of prefix + response, and where the response starts. Long prefixes are
    cut from the left, long responses from the right."""
    pre = tok(_prefix(tok, instruction), add_special_tokens=False)["input_ids"]
    res = tok(response, add_special_tokens=False)["input_ids"]
    pre = pre[-max(1, max_length // 2):] if len(pre) + len(res) > max_length else pre
    res = res[:max(0, max_length - len(pre))]
    return pre + res, len(pre)


def _batch(tok, encoded, device):
    """Left-padded batch: every response ends at the right edge, so the LM head (a
    vocab-sized matmul) runs only over the last positions that hold response tokens."""
    width = max(len(ids) for ids, _ in encoded)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    for r, (ids, start) in enumerate(encoded):
        off = width - len(ids)
        input_ids[r, off:] = torch.tensor(ids)
        attention[r, off:] = 1
        labels[r, off + start:] = torch.tensor(ids[start:])
    return input_ids.to(device), attention.to(device), labels.to(device)


def per_row_loss(model, input_ids, attention, labels) -> torch.Tensor:
    """Mean next-token NLL over each row's labelled tokens (NaN where none)."""
    width = input_ids.shape[1]
    labelled = (labels != -100).any(0).nonzero()
    first = int(labelled[0]) if len(labelled) else width - 1
    keep = width - first + 1  # logits from the position before the first response token on
    positions = (attention.cumsum(1) - 1).clamp(min=0)  # left padding must not shift positions
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                   logits_to_keep=keep).logits[:, :-1].float()
    target = labels[:, width - keep + 1:]
    nll = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="none")
    nll = torch.where(target == -100, 0.0, nll)  # padded positions may hold NaN logits
    n = (target != -100).sum(1)
    return nll.sum(1) / n.clamp(min=1) + torch.where(n == 0, float("nan"), 0.0)


def response_losses(model, tok, instructions: list[str | None], responses: list[str], *,
                    batch_size: int = 8, max_length: int = 512, progress: bool = True,
                    desc: str = "scoring") -> np.ndarray:
    """Mean per-token loss of each response given its instruction (None = without)."""
    encoded = [encode(tok, i, r, max_length) for i, r in zip(instructions, responses)]
    order = np.argsort([len(ids) for ids, _ in encoded], kind="stable")
    out = np.full(len(encoded), np.nan)
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress):
            idx = order[start:start + batch_size]
            out[idx] = per_row_loss(model, *_batch(tok, [encoded[i] for i in idx], device)).cpu().numpy()
    return out


def train_steps(model, tok, instructions, responses, *, steps: int, lr: float, batch_size: int = 8,
                max_length: int = 256, seed: int = 0) -> None:
    """A few AdamW steps on (instruction, response) rows: the cheap fine-tune that the
    usefulness re-weighting measures loss reduction with."""
    encoded = [encode(tok, i, r, max_length) for i, r in zip(instructions, responses)]
    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = rng.choice(len(encoded), size=min(batch_size, len(encoded)), replace=False)
        loss = per_row_loss(model, *_batch(tok, [encoded[i] for i in idx], device)).nanmean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def generate(model, tok, instructions: list[str | None], *, max_new_tokens: int = 64, batch_size: int = 8,
             max_length: int = 256) -> list[str]:
    """Greedy answers of `model` to each instruction (same chat-template prefix as the
    losses): what the k-means reward-gap re-weighting compares with the gold answers."""
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    out: list[str] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(instructions), batch_size):
            prefixes = [tok(_prefix(tok, i), add_special_tokens=False)["input_ids"][-max_length:]
                        for i in instructions[start:start + batch_size]]
            width = max(len(p) for p in prefixes)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in prefixes], device=device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prefixes], device=device)
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=pad)
            out += tok.batch_decode(gen[:, width:], skip_special_tokens=True)
    return out
