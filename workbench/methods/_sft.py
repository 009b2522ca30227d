"""What every SFT variant shares: the knob it has in common with plain `sft`, the
SFTConfig from the run's shared knobs, trainer construction, and the reference model
for the variants that need one (Anchored SFT, DFT with KL tracking)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from trl import SFTConfig

from ..errors import WorkbenchError
from ._preference import TruncationWarning, frozen_copy, trains_adapter
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


def check_completion_room(config, method_config, tokenizer, train_dataset) -> None:
    """MethodSpec.check_data of the SFT variants, before the run directory exists: with the loss
    on completions only, TRL truncates each row to `max_length` tokens (keep-start) and silently
    drops the rows left with no completion token — a prompt that fills `max_length` by itself.
    Some: a one-line TruncationWarning with the count; all: WorkbenchError (TRL's sampler would
    otherwise fail on an empty dataset with a traceback)."""
    from ..training.samples import prompt_token_ids

    if not getattr(method_config, "completion_only_loss", True) or not config.max_length:
        return
    lengths = [len(prompt_token_ids(tokenizer, prompt)) for prompt in train_dataset["prompt"]]
    dropped = sum(n >= config.max_length for n in lengths)
    if not dropped:
        return
    text = (f"{dropped} of {len(lengths)} training rows have a prompt of max_length={config.max_length} tokens "
            f"or more, so no completion token is left to train on (TRL drops them); the longest prompt has "
            f"{max(lengths)} tokens: raise max_length above it")
    if dropped == len(lengths):
        raise WorkbenchError(f"method {config.method!r}: all {text}")
    warnings.warn(text, TruncationWarning, stacklevel=2)
