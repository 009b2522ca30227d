"""A decoding copy that follows a model while it trains: made once, refreshed in place.

An on-policy trainer (TRL's GRPOTrainer, RLOOTrainer) samples from the policy at every step.
On the CPU TRL decodes with the training model itself: a PEFT model whose every linear runs
its adapter beside it, in fp32 (TRL's generation runs outside the run's bf16 autocast), on the
default CPU kernels that are slow at a few rows. A decoding copy (decoding.py: adapter merged,
linears stored at the run's precision, packed for decode steps) samples faster, but making one
takes ~0.6–1.1 s on SmolLM2 — as long as what it saves on a 32-token completion batch.

The mirror makes the copy once and then, each time the policy has changed, recomputes only
what training can change: for a plain LoRA model, the merged weight W + s·BA of each adapted
linear (PEFT's own `get_delta_weight`, as its merge computes it); for a fully trained model, every
trainable parameter. The refreshed copy equals a fresh `decoding_copy` bit for bit
(tests/onpolicy/test_decoding_mirror.py). Other PEFT types (DoRA, IA3, prompt learning, extra
trainable modules) read their weights in ways a plain merge does not reproduce: no mirror.
"""
from __future__ import annotations

import weakref

import torch

from . import decoding
from .decoding import decoding_context, decoding_copy, plain_lora
from .kv_cache import reserved_cache_kwargs
from .prepacked import repack


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


def mirrorable(model) -> bool:
    """A model with no PEFT adapter, or with plain LoRA adapters only (no DoRA, no extra
    trainable modules beside the adapters)."""
    configs = getattr(model, "peft_config", None)
    if not configs:
        return True
    if not plain_lora(model) or any(getattr(c, "lora_bias", False) or getattr(c, "modules_to_save", None)
                                    or getattr(c, "trainable_token_indices", None) for c in configs.values()):
        return False
    adapter_params = {id(p) for layer in _lora_layers(model).values()
                      for p in [*layer.lora_A.parameters(), *layer.lora_B.parameters()]}
    return all(id(p) in adapter_params for p in model.parameters() if p.requires_grad)


class DecodingMirror:
    """`model`'s decoding copy (`self.copy`), refreshed by `sync()`. Build it with `make_mirror`."""

    def __init__(self, model, copy: torch.nn.Module, bf16: bool):
        self.copy, self.bf16 = copy, bf16
        self._model = weakref.ref(model)  # only to tell whose mirror this is (`follows`)
        base = model.get_base_model() if hasattr(model, "peft_config") else model
        dst = dict(copy.named_modules())
        lora = _lora_layers(base)
        self.adapter = model.active_adapter if lora else None
        # LoRA: (copy's linear, the training model's LoRA layer) for each adapted linear
        self.linears = [(dst[name], layer) for name, layer in lora.items()]
        # full training: (copy's parameter, the training model's) for every trainable parameter, found
        # by module name so that a tied LM head is found through its module; and the copy's linears to repack
        self.params: list[tuple[torch.nn.Parameter, torch.nn.Parameter]] = []
        self.repacked: list[torch.nn.Linear] = []
        if not lora:
            src_modules, seen = dict(base.named_modules()), set()
            for name, module in dst.items():
                moved = False
                for pname, p in module.named_parameters(recurse=False):
                    q = getattr(src_modules[name], pname)
                    moved |= q.requires_grad
                    if q.requires_grad and id(p) not in seen:
                        seen.add(id(p))
                        self.params.append((p, q))
                if moved and isinstance(module, torch.nn.Linear):
                    self.repacked.append(module)
        self.step: int | None = None

    @torch.no_grad()
    def sync(self, step: int) -> None:
        """Bring the copy to the model's current weights (once per `step`)."""
        if step == self.step:
            return
        for dst, layer in self.linears:
            dst.weight.copy_(layer.base_layer.weight + layer.get_delta_weight(self.adapter))
            repack(dst)
        for dst, src in self.params:
            dst.copy_(src)
        for module in self.repacked:
            repack(module)
        self.step = step

    def follows(self, model) -> bool:
        return self._model() is model

    def context(self):
        """bf16 autocast for a bf16 copy (its norms and embeddings stay fp32, as autocast leaves
        them), and the fast token draw (decoding.decoding_context)."""
        return decoding_context(self.bf16)


def make_mirror(model, *, bf16: bool, step: int) -> DecodingMirror | None:
    """A mirror of `model` synced at `step`, or None where none applies (not mirrorable, not on
    the CPU, too little memory: see `decoding_copy`)."""
    if not mirrorable(model):
        return None
    if isinstance(getattr(model, "active_adapter", None), list):  # several adapters active at once
        return None
    copied = decoding_copy(model, merge=True, bf16=bf16)
    if copied is None:
        return None
    copied.generate = _reserving_generate(copied)
    mirror = DecodingMirror(model, copied, bf16)
    mirror.step = step  # a fresh copy is the model as it is now
    decoding._mirrors[id(model)] = mirror  # evaluations decode from it too (decoding.eval_decoder)
    return mirror


def _reserving_generate(model):
    """`model.generate`, given a KV cache reserved for the prompt and the new tokens (kv_cache.py)
    when the call brings none: TRL's sampling call cannot be handed one. A 32-row, 32-token
    evaluation call took 0.91–0.94× the time (SmolLM2, bf16, 2 cores); 4 rows, the same. The function
    holds the model weakly: stored on the model, it would otherwise keep the copy alive in a cycle."""
    ref = weakref.ref(model)

    def generate(*args, **kwargs):
        model = ref()
        ids = kwargs.get("input_ids", args[0] if args else None)
        config = kwargs.get("generation_config") or model.generation_config
        new = kwargs.get("max_new_tokens") or getattr(config, "max_new_tokens", None)
        if torch.is_tensor(ids) and new and not {"past_key_values", "cache"} & kwargs.keys():
            kwargs.update(reserved_cache_kwargs(model, ids.shape[-1] + new))
        return type(model).generate(model, *args, **kwargs)
    return generate
