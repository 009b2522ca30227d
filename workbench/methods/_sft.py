"""What every SFT variant shares: the knob it has in common with plain `sft`, the
SFTConfig from the run's shared knobs, trainer construction, and the reference model
for the variants that need one (Anchored SFT, DFT with KL tracking)."""
from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig

from ._preference import frozen_copy, trains_adapter
from .base import MethodArgs, length_grouping, sampling_strategy


@dataclass
class CommonSFTArgs(MethodArgs):
    """Knobs every SFT variant shares with plain `sft`."""
    completion_only_loss: bool = field(default=True, metadata={
        "help": "train on the response tokens only (the prompt is context, not target)"})
    group_by_length: bool = length_grouping()


def sft_args(ctx, **extra) -> SFTConfig:
    m = ctx.method_config
    return SFTConfig(**ctx.trl_args(), completion_only_loss=m.completion_only_loss,
                     train_sampling_strategy=sampling_strategy(m), **extra)


def make_trainer(cls, ctx, args: SFTConfig, train_dataset=None, **kw):
    return ctx.build(cls, args, train_dataset=ctx.train_dataset if train_dataset is None else train_dataset, **kw)


def frozen_reference(ctx):
    """A frozen copy of the starting model for full fine-tuning (and layer freezing);
    None when the run trains an adapter, whose disabled adapter *is* the reference."""
    if trains_adapter(ctx):
        return None
    return frozen_copy(ctx.model)
