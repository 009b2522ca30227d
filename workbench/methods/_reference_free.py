"""Shared bits of the reference-free pairwise methods built on TRL trainers (ORPO,
CPO/SimPO): construction with the eval probes attached, and the reference the probes
compare against (TRL's adapter reference under PEFT, a frozen copy of the starting model
under full fine-tuning; none when the probes are off)."""
from __future__ import annotations

from ._preference import attach_probes, frozen_copy, trains_adapter


def build_probed(ctx, trainer_cls, args):
    """Construct `trainer_cls` (a module-level PreferenceProbeMixin + TRL trainer class)
    and attach the probes."""
    ref = probe_reference(ctx)
    return attach_probes(ctx.build(trainer_cls, args), ctx, reference=ref)


def probe_reference(ctx):
    """A frozen copy of the starting model for the probes, only under full fine-tuning
    with probes and eval rows; None otherwise (PEFT: the adapter reference serves)."""
    m = ctx.method_config
    if trains_adapter(ctx) or not (m.probe_pairs or m.probe_kl_prompts):
        return None
    if ctx.eval_dataset is None or len(ctx.eval_dataset) == 0:
        return None
    return frozen_copy(ctx.model)
