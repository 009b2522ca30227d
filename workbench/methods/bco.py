"""BCO (Jung et al., "Binary Classifier Optimization for LLM Alignment") on unpaired
thumbs-up/down data: TRL 1.x dropped its BCOTrainer, so this subclasses KTOTrainer (same
unpaired batching, reference handling and logging) and replaces the loss with
workbench.methods.losses.bco_loss: a logistic classifier on the implicit reward with a
running-mean reward shift δ. The paired form is DPO's `loss_type=bco_pair`.
Partial ("BCO without UDM"): the paper's underlying-distribution-matching step (a
classifier on prompt embeddings whose density ratio reweights the undesirable samples,
TRL 0.x's `prompt_sample_size`/`min_density_ratio`/`max_density_ratio`) is not implemented;
every sample has weight 1."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from trl.models.utils import disable_gradient_checkpointing

from ._preference import ReferenceArgs, adapter_reference
from .base import MethodSpec, register
from .kto import ProbedKTOTrainer, build_kto_trainer
from .losses import bco_loss


@dataclass
class BCOArgs(ReferenceArgs):
    pass


class BCOTrainer(ProbedKTOTrainer):
    """KTOTrainer whose loss is BCO's; δ is the running mean of every reward seen."""

    _delta_sum = 0.0
    _delta_count = 0

    @property
    def delta(self) -> float:
        return self._delta_sum / self._delta_count if self._delta_count else 0.0

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        policy, ref = self._logps(model, inputs)
        labels = torch.as_tensor(inputs["label"], dtype=torch.bool, device=policy.device)
        rewards = self.beta * (policy - ref)
        delta = self.delta
        loss = bco_loss(rewards, labels, delta)
        if mode == "train":  # reward shift: mean over all training rewards so far (detached)
            self._delta_sum += rewards.detach().sum().item()
            self._delta_count += rewards.numel()
        m = self._metrics[mode]
        m["delta"].append(delta)
        for name, sel in (("chosen", labels), ("rejected", ~labels)):
            if sel.any():
                m[f"rewards/{name}"].append(rewards[sel].detach().mean().item())
                m[f"logps/{name}"].append(policy[sel].detach().mean().item())
        if labels.any() and (~labels).any():
            m["rewards/margins"].append((rewards[labels].mean() - rewards[~labels].mean()).item())
        m["rewards/accuracies"].append(((rewards - delta > 0) == labels).float().mean().item())
        return (loss, {}) if return_outputs else loss

    def _logps(self, model, inputs):
        """Total completion log-prob under the policy and the reference."""
        keys = {"input_ids", "attention_mask"}
        kwargs = {k: v for k, v in inputs.items() if k in keys}
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
        seq_len = inputs["input_ids"].size(1) - 1
        out = model(**kwargs, labels=labels, use_cache=False, fused_lm_head=True)
        policy = out.log_probs[:, -seq_len:].sum(-1)
        if self.precompute_ref_logps:
            return policy, inputs["ref_logps"]
        with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
            if self.ref_model is None:
                with adapter_reference(self.accelerator.unwrap_model(self.model)):
                    ref_out = self.model(**kwargs, labels=labels, use_cache=False, fused_lm_head=True)
            else:
                ref_out = self.ref_model(**kwargs, labels=labels, use_cache=False, fused_lm_head=True)
        return policy, ref_out.log_probs[:, -seq_len:].sum(-1)


def build_bco_trainer(ctx):
    # apo_zero_unpaired: KTOTrainer then skips building the mismatched-pair KL batch BCO does not use
    return build_kto_trainer(ctx, trainer_cls=BCOTrainer, loss_type="apo_zero_unpaired")


register(MethodSpec(
    name="bco", config_cls=BCOArgs, data_format="unpaired",
    summary="BCO without UDM: binary classifier on the implicit reward, running-mean reward shift (unpaired)",
    build_trainer=build_bco_trainer, family="preference"))
