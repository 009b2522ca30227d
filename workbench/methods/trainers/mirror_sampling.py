"""On-policy sampling from a decoding mirror of the policy (workbench.models.decoding_mirror).

TRL's GRPOTrainer and RLOOTrainer, without vLLM, generate with `unwrapped_model.generate(...)` on
the model `unwrap_model_for_generation(self.model_wrapped, ...)` gives them. On the CPU that is
the training model: its adapters unmerged, in fp32 (the generation runs outside the run's
autocast) and on kernels slow at a few rows. `MirrorSampling`, placed before the TRL trainer in
a subclass, hands TRL's own generation code a mirror of the policy instead, refreshed whenever
an optimizer step has moved the weights: adapters merged, linears at the run's precision (bf16
for a bf16 run, under autocast, as the workbench's own on-policy rounds sample) and packed. TRL
does everything else as before: prompts, padding, the sampling settings, EOS masking, rewards.

Our reading, not TRL's: sampling from the run's precision rather than fp32 is at least as
faithful to the policy the loss trains, whose log-probabilities are computed under the same
autocast. The mirror is in eval mode, so a LoRA dropout (0 by default) does not act while sampling.
Where no mirror applies (GPU, several processes, vLLM, continuous batching, PEFT types other than
plain LoRA) or `WORKBENCH_SAMPLING_MIRROR=0`, TRL's path runs unchanged.
"""
from __future__ import annotations

import os

import torch

from ...models.decoding_mirror import make_mirror

OPT_OUT_ENV = "WORKBENCH_SAMPLING_MIRROR"


class MirrorSampling:
    """Mixin for TRL's GRPOTrainer / RLOOTrainer (`class X(MirrorSampling, GRPOTrainer)`)."""

    _workbench_mirror = None  # None: not made yet; False: none applies to this run

    def policy_mirror(self):
        """The mirror, synced to the current step, or None where TRL's own generation runs."""
        if self._workbench_mirror is None:
            applies = (os.environ.get(OPT_OUT_ENV, "").strip() != "0" and not getattr(self, "use_vllm", False)
                       and not getattr(self, "use_transformers_continuous_batching", False)
                       and not (torch.distributed.is_available() and torch.distributed.is_initialized()))
            mirror = applies and make_mirror(self.model, bf16=bool(self.args.bf16), step=self.state.global_step)
            self._workbench_mirror = mirror or False
        if self._workbench_mirror is False:
            return None
        self._workbench_mirror.sync(self.state.global_step)  # the weights move only at optimizer steps
        return self._workbench_mirror

    def _generate_single_turn(self, prompt_ids, *args, **kwargs):
        mirror = self.policy_mirror()
        if mirror is None:
            return super()._generate_single_turn(prompt_ids, *args, **kwargs)
        wrapped, self.model_wrapped = self.model_wrapped, mirror.copy
        try:
            with mirror.context():
                return super()._generate_single_turn(prompt_ids, *args, **kwargs)
        finally:
            self.model_wrapped = wrapped
