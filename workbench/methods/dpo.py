"""DPO through TRL's DPOTrainer with every TRL 1.x loss type (and weighted combinations),
plus the named variants RPO (DPO + SFT on the chosen response) and LN-DPO (length-
normalised log-ratios, TRL's `sigmoid_norm`). All of them log TRL's rewards/* and logps/*
every step, and the preference probes (ranking accuracy, KL to reference, sample length)
at every evaluation; plain DPO (loss_type=sigmoid alone) also logs the idealised ranking
accuracy of the DPO optimum and the alignment gap (Chen et al.). Before training, pairs that
`max_length` cuts before chosen and rejected differ are counted (warning; error if all).
Trainer: `ProbedDPOTrainer` (TRL's DPOTrainer + the probes)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import DPOConfig, DPOTrainer

from ..errors import UnknownNameError, WorkbenchError
from ._preference import (
    ReferenceArgs,
    adapter_is_identity,
    attach_probes,
    check_pair_data,
    common_args,
    reference_model,
    split_list,
)
from .base import MethodSpec, length_grouping, register, sampling_strategy
from .preference_metrics import PreferenceProbeMixin

# TRL 1.x DPOConfig.loss_type values (trl/trainer/dpo_trainer.py `_compute_loss`).
DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
                  "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")

LR_NOTE = "recommended learning rate: ~5e-6 full fine-tuning, 5e-5–5e-4 LoRA (the run's learning_rate)"


@dataclass
class DPOArgs(ReferenceArgs):
    loss_type: list[str] | str = field(default="sigmoid", metadata={
        "help": "TRL loss type, or several comma-separated to combine (e.g. sigmoid,sft); " + LR_NOTE,
        "choices": list(DPO_LOSS_TYPES)})
    loss_weights: list[float] | str | None = field(default=None, metadata={
        "help": "one weight per loss type when combining (comma-separated); default all 1"})
    label_smoothing: float = field(default=0.0, metadata={
        "help": "robust: assumed label-flip rate in [0, 0.5); exo_pair: ε (needs > 0, e.g. 1e-3); aot: smoothing"})
    f_divergence_type: str = field(default="reverse_kl", metadata={
        "help": "f-DPO regulariser between policy and reference", "choices": list(F_DIVERGENCES)})
    discopop_tau: float = field(default=0.05, metadata={"help": "DiscoPOP temperature (loss_type=discopop)"})
    use_weighting: bool = field(default=False, metadata={"help": "WPO weighting of pairs by policy probability"})
    group_by_length: bool = length_grouping("pairs")
    probe_alpha: float = field(default=0.75, metadata={
        "help": "α for the idealised ranking accuracy: assumed share of raters preferring the chosen "
                "response, for eval rows without an `alpha` column (0 < α ≤ 1; plain DPO only)"})

    def losses(self) -> list[str]:
        return split_list(self.loss_type, "loss_type")

    def weights(self) -> list[float] | None:
        return split_list(self.loss_weights, "loss_weights", float) or None

    def has_dpo_optimum(self) -> bool:
        """The objective is DPO's own (sigmoid loss alone, no label smoothing, reverse KL, no
        pair weighting), whose optimum π_ref·exp(r/β) the idealised ranking accuracy assumes."""
        return (self.losses() == ["sigmoid"] and self.label_smoothing == 0
                and self.f_divergence_type == "reverse_kl" and not self.use_weighting)

    def __post_init__(self):
        # checked here so bad knobs fail before the engine creates a run directory
        super().__post_init__()  # probe knobs, beta > 0
        losses, weights = self.losses(), self.weights()
        if not losses:
            raise WorkbenchError("method.loss_type: give at least one loss type")
        for loss in losses:
            if loss not in DPO_LOSS_TYPES:
                raise UnknownNameError("method.loss_type", loss, DPO_LOSS_TYPES)
        if weights is not None and len(weights) != len(losses):
            raise WorkbenchError(f"method.loss_weights: {len(weights)} weights for {len(losses)} loss types {losses}")
        if self.f_divergence_type not in F_DIVERGENCES:
            raise UnknownNameError("method.f_divergence_type", self.f_divergence_type, F_DIVERGENCES)
        if "exo_pair" in losses and self.label_smoothing <= 0:
            raise WorkbenchError("method.label_smoothing: exo_pair needs ε > 0 (the EXO paper uses 1e-3)")
        if not 0 < self.probe_alpha <= 1:
            raise WorkbenchError(f"method.probe_alpha: a share of raters in (0, 1], got {self.probe_alpha}")
        if "robust" in losses and not 0 <= self.label_smoothing < 0.5:
            raise WorkbenchError("method.label_smoothing: robust needs a flip rate in [0, 0.5), "
                                 f"got {self.label_smoothing}")


@dataclass
class RPOArgs(DPOArgs):
    loss_type: list[str] | str = field(default="sigmoid,sft", metadata={
        "help": "DPO sigmoid loss plus NLL on the chosen response; " + LR_NOTE})
    loss_weights: list[float] | str | None = field(default="1.0,1.0", metadata={
        "help": "weights of the DPO and SFT terms (RPO's α is the second)"})


@dataclass
class LNDPOArgs(DPOArgs):
    beta: float = field(default=1.0, metadata={
        "help": "β on per-token log-ratios; larger than DPO's because length-normalised margins are small"})
    loss_type: list[str] | str = field(default="sigmoid_norm", metadata={
        "help": "sigmoid on length-normalised log-ratios (TRL sigmoid_norm); " + LR_NOTE})


class ProbedDPOTrainer(PreferenceProbeMixin, DPOTrainer):
    """TRL's DPOTrainer plus the eval-time preference probes, and eval batches whose
    reference log-probs are computed once: the eval set is fixed and, while the reference is
    frozen (no `sync_ref_model`), so is the reference, yet TRL reruns it at every
    evaluation. The first evaluation scores each eval batch with TRL's own
    `compute_ref_log_probs` and keeps the result; later ones feed it to TRL's loss the way
    `precompute_ref_log_probs` does, so an evaluation costs one policy forward, not two. That
    forward's per-pair log-probs are also what the ranking probes need, so the probes do not
    score the held-out pairs again. At the start of a LoRA run (`eval_on_start`) the policy is
    bit for bit its reference, so the first evaluation reads the reference off that same
    forward too: one pass instead of two."""

    cache_eval_reference = True

    def _get_train_sampler(self, train_dataset=None):
        # TRL's collator pads a batch's 2B sequences (prompt+chosen, prompt+rejected) to the longest,
        # so a pair costs its prompt plus its longer response. transformers' LengthGroupedSampler
        # cannot infer that from DPO's columns: give it the lengths.
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or dataset is None:
            return super()._get_train_sampler(train_dataset)
        lengths = [len(p) + max(len(c), len(r)) for p, c, r in
                   zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"])]
        return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                    lengths=lengths)

    def _get_eval_sampler(self, eval_dataset):
        # Eval batches of similar lengths: TRL pads a batch's sequences to the longest, and a
        # DPO evaluation is compute-bound (the built-in preferences, 16 rows at batch 4: 4544
        # padded tokens in row order, 3456 sorted). The probes read the pass's per-pair
        # log-probs in row order: `_captured_pair_logps` undoes this order.
        self._eval_order = None
        if eval_dataset is None or self.args.world_size > 1 or "prompt_ids" not in eval_dataset.column_names:
            return super()._get_eval_sampler(eval_dataset)
        lengths = [len(p) + max(len(c), len(r)) for p, c, r in
                   zip(eval_dataset["prompt_ids"], eval_dataset["chosen_ids"], eval_dataset["rejected_ids"])]
        self._eval_order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        return self._eval_order

    def _captured_pair_logps(self):
        captured = super()._captured_pair_logps()
        order = getattr(self, "_eval_order", None)
        if captured is None or order is None or len(captured[0]) != 2 * len(order):
            return captured
        # batch order → row order: pair k of the pass is row order[k] (chosen, rejected interleaved)
        rows = torch.tensor(order)
        slots = torch.stack([2 * rows, 2 * rows + 1], 1).flatten()
        out = []
        for values in captured:
            ordered = torch.empty_like(values)
            ordered[slots] = values
            out.append(ordered)
        return tuple(out)

    def _compute_loss(self, model, inputs, return_outputs):
        if (self.model.training or self.precompute_ref_logps or not self.cache_eval_reference
                or getattr(self.args, "sync_ref_model", False)):
            return super()._compute_loss(model, inputs, return_outputs)
        cache = self.__dict__.setdefault("_eval_ref_logps", {})
        key = tuple((k, tuple(v.shape), v.cpu().numpy().tobytes()) for k, v in sorted(inputs.items())
                    if isinstance(v, torch.Tensor))
        n = inputs["completion_mask"].size(1) - 1  # TRL's completion positions (shifted)
        # At the start of a LoRA run the policy is its reference bit for bit (B = 0): the reference
        # log-probs are then the policy's own, read off its forward below instead of a second pass.
        from_policy = (key not in cache and self.ref_model is None and self.ld_alpha is None
                       and adapter_is_identity(self.accelerator.unwrap_model(self.model)))
        if from_policy:  # TRL reads the batch's reference after the policy's forward, which fills it
            batch = _ReferenceAfterForward(inputs)
        else:
            if key not in cache:
                cache[key] = self.compute_ref_log_probs(self.ref_model or self.model, inputs)
            batch = {**inputs, "ref_chosen_logps": cache[key][0], "ref_rejected_logps": cache[key][1]}
        seen = []  # the policy's forward output: its per-pair log-probs feed the probes too

        def on_forward(mod, args, out):
            seen.append(out)
            if from_policy:  # the sum compute_ref_log_probs takes, of the same numbers
                batch.reference = tuple(x.detach() for x in out.log_probs[:, -n:].sum(dim=1).chunk(2, dim=0))
        hook = model.register_forward_hook(on_forward)
        self.precompute_ref_logps = True  # TRL's switch: read the reference from the batch
        try:
            result = super()._compute_loss(model, batch, return_outputs)
        finally:
            self.precompute_ref_logps = False
            hook.remove()
        if from_policy:
            cache[key] = batch.reference
        chosen, rejected = cache[key]
        captured = self.__dict__.get("eval_pair_logps")  # set by the probes' evaluation_loop
        if (captured is not None and len(seen) == 1 and self.ld_alpha is None
                and getattr(seen[0], "log_probs", None) is not None):
            # as TRL sums them: per-token log-probs (0 outside the completion) over the completion positions
            pol_chosen, pol_rejected = seen[0].log_probs[:, -n:].sum(1).chunk(2)
            captured.append((pol_chosen, pol_rejected, chosen, rejected))
        return result


class _ReferenceAfterForward(dict):
    """A DPO batch whose ref_chosen_logps / ref_rejected_logps are looked up only when TRL's
    loss reads them, after the policy's forward has set `reference` (see _compute_loss)."""

    reference: tuple | None = None
    _KEYS = ("ref_chosen_logps", "ref_rejected_logps")

    def __missing__(self, key):
        if key not in self._KEYS or self.reference is None:
            raise KeyError(key)
        return self.reference[self._KEYS.index(key)]


def dpo_config(ctx, **extra):
    """DPOConfig from the run's shared knobs, the method's DPO knobs and `extra`."""
    m = ctx.method_config
    return DPOConfig(**common_args(ctx), beta=m.beta, loss_type=m.losses(), loss_weights=m.weights(),
                     label_smoothing=m.label_smoothing, f_divergence_type=m.f_divergence_type,
                     discopop_tau=m.discopop_tau, use_weighting=m.use_weighting,
                     precompute_ref_log_probs=m.precompute_ref_log_probs,
                     train_sampling_strategy=sampling_strategy(m), **extra)


def build_dpo_trainer(ctx, trainer_cls=ProbedDPOTrainer):
    args = dpo_config(ctx)
    ref = reference_model(ctx)  # None under PEFT: TRL's "ref" adapter / adapter-disabled base
    trainer = ctx.build(trainer_cls, args, ref_model=ref)
    trainer = attach_probes(trainer, ctx, reference=ref)
    m = ctx.method_config
    if m.has_dpo_optimum():
        trainer.probe_args.update(ideal_beta=m.beta, ideal_alpha=m.probe_alpha)
    return trainer

for _name, _cls, _summary in (
        ("dpo", DPOArgs, "direct preference optimisation, any TRL loss type or weighted mix (TRL DPOTrainer)"),
        ("rpo", RPOArgs, "RPO: DPO + SFT loss on the chosen response (TRL loss_type=[sigmoid, sft])"),
        ("ln-dpo", LNDPOArgs, "length-normalised DPO: sigmoid on per-token log-ratios (TRL sigmoid_norm)")):
    register(MethodSpec(name=_name, config_cls=_cls, data_format="preference", summary=_summary,
                        build_trainer=build_dpo_trainer, family="preference", check_data=check_pair_data))
