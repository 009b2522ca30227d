"""A faster LM head for TRL's trainers on CPU.

TRL's trainers (SFT, DPO, GRPO, KTO, RLOO and our DPO-based objectives) patch the model with
`trl.trainer.utils.add_fused_lm_head`, so `model(..., labels=..., fused_lm_head=True)` returns
per-token log-probs without materialising the (batch, seq, vocab) logits. On a GPU that is a
Triton kernel. On CPU it falls back to torch ops over [4096 × 32768] tiles: some ten full
passes over every tile forward and again in the backward, and it scores every position —
prompt and padding included — because the GPU-free path keeps tile shapes fixed.

`use_cpu_lm_head(trainer)` swaps that forward, on CPU only, for one that projects just the
positions that have a label, in row chunks, through torch's own log_softmax, and returns the
same `FusedCausalLMOutput` fields (log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1,
label_mask, loss). The entropy is computed outside autograd unless the trainer's loss uses it
(GRPO's entropy bonus), and a logit scale or temperature of exactly 1 is not applied: the
entropy in the graph and those two passes over the (labelled positions × 49k) logits cost a
packed SFT+LoRA step of SmolLM2 11% (4.42 → 3.92 s/step, one thread; DPO 4.99 → 4.70;
identical losses; benchmarks/results/vs_trl.md).
tests/methods_sft/test_cpu_lm_head.py checks values and gradients against TRL's path;
benchmarks/bench_lm_head.py measures the difference. MoE models (router logits)
and anything that is not TRL's patched forward are left as they are.
`WORKBENCH_TRL_LM_HEAD=1` keeps TRL's path (for benchmarks)."""
from __future__ import annotations

import contextlib
import os
import types

import torch

ROWS = 512  # positions projected at once: ROWS × vocab floats (≈100 MB for a 49k vocabulary)


def _closure(fn) -> dict:
    code = getattr(fn, "__code__", None)
    if code is None or code.co_name != "_fused_forward" or not fn.__closure__:
        return {}
    return {name: cell.cell_contents for name, cell in zip(code.co_freevars, fn.__closure__)}


def _per_token(z: torch.Tensor, targets: torch.Tensor, outputs: tuple[str, ...], entropy_grad: bool) -> dict:
    logp = torch.log_softmax(z, -1)
    out = {"log_probs": logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)}
    if "entropy" in outputs:  # a metric has no graph and saves no (positions × vocab) tensors
        with contextlib.nullcontext() if entropy_grad else torch.no_grad():
            out["entropy"] = -(logp.exp() * logp).sum(-1)
    with torch.no_grad():
        if "log_sum_sq_probs" in outputs:
            out["log_sum_sq_probs"] = torch.logsumexp(2 * logp, -1)
        if "mean_logits" in outputs:
            out["mean_logits"] = z.mean(-1)
        if "is_top1" in outputs:  # argmax returns the first maximum, as TRL's tie rule does
            out["is_top1"] = z.argmax(-1) == targets
    return out


def _make_forward(trl_forward, c: dict, entropy_grad: bool):
    backbone_attr = c["backbone_attr"]
    outputs, temperature = tuple(c["outputs"]), float(c["temperature"])
    softcap, scale, fp32 = c["final_logit_softcapping"], c["logit_scale"], bool(c["cast_lm_head_to_fp32"])
    from trl.trainer.utils import FusedCausalLMOutput

    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None,
                **kwargs):
        if not fused_lm_head or getattr(c["text_config"], "output_router_logits", False):
            return trl_forward(*args, fused_lm_head=fused_lm_head, labels=labels, shift_labels=shift_labels,
                               num_items_in_batch=num_items_in_batch, **kwargs)
        kwargs["use_cache"] = False
        hidden = getattr(self, backbone_attr)(*args, **kwargs).last_hidden_state
        if shift_labels is None:
            hidden, labels = hidden[:, :-1], labels[:, 1:]
        else:
            labels = shift_labels
        lm_head = self.get_output_embeddings()
        labels = labels.to(lm_head.weight.device)
        mask = labels != -100
        h, targets = hidden.to(lm_head.weight.device)[mask], labels[mask]
        pieces: dict[str, list] = {}
        with torch.autocast("cpu", enabled=False) if fp32 else contextlib.nullcontext():
            if fp32:
                h = h.float()
            # one chunk even when nothing is labelled, so the outputs stay connected to the graph
            for s in range(0, max(len(h), 1), ROWS):
                z = lm_head(h[s:s + ROWS]).float()
                if scale != 1.0:  # x * 1.0 and x / 1.0 are x: skip two passes over the logits
                    z = z * scale
                if softcap is not None:
                    z = softcap * torch.tanh(z / softcap)
                if temperature != 1.0:
                    z = z / temperature
                for k, v in _per_token(z, targets[s:s + ROWS], outputs, entropy_grad).items():
                    pieces.setdefault(k, []).append(v)
        fields = {k: v[0].new_zeros(mask.shape).masked_scatter(mask, torch.cat(v)) for k, v in pieces.items()}
        log_probs = fields["log_probs"]
        loss = -log_probs.sum() / (mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
        return FusedCausalLMOutput(loss=loss, log_probs=log_probs, entropy=fields.get("entropy"),
                                   log_sum_sq_probs=fields.get("log_sum_sq_probs"),
                                   mean_logits=fields.get("mean_logits"), is_top1=fields.get("is_top1"),
                                   label_mask=mask, aux_loss=None)

    return forward


def replace_fused_head(model, entropy_grad: bool = True) -> bool:
    """Swap TRL's fused forward on this (base) model for the CPU one; False if it is not
    TRL's, not on CPU, or its closure does not have what we read. `entropy_grad=False`: the
    entropy is a metric only, computed without autograd."""
    fn = getattr(model.__dict__.get("forward"), "__func__", None)
    c = _closure(fn)
    needed = ("backbone_attr", "outputs", "temperature", "final_logit_softcapping",
              "logit_scale", "cast_lm_head_to_fp32", "text_config")
    if not all(k in c for k in needed) or model.get_output_embeddings().weight.device.type != "cpu":
        return False
    model.forward = types.MethodType(_make_forward(model.forward, c, entropy_grad), model)
    return True


def entropy_in_loss(args) -> bool:
    """Whether a trainer's loss differentiates the entropy: TRL's GRPO entropy bonus
    (`entropy_coef`, `use_adaptive_entropy`). Everywhere else it is a logged metric."""
    return getattr(args, "entropy_coef", 0.0) != 0.0 or bool(getattr(args, "use_adaptive_entropy", False))


def use_cpu_lm_head(trainer) -> int:
    """Apply `replace_fused_head` to the trainer's model and reference model; the number replaced."""
    if os.environ.get("WORKBENCH_TRL_LM_HEAD") == "1":
        return 0
    grad = entropy_in_loss(getattr(trainer, "args", None))
    n = 0
    for m in (getattr(trainer, "model", None), getattr(trainer, "ref_model", None)):
        if m is None:
            continue
        base = m.get_base_model() if hasattr(m, "get_base_model") else m
        n += replace_fused_head(base, entropy_grad=grad)
    return n
