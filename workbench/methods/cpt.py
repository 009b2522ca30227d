"""Continued pre-training: next-token cross-entropy on every token of raw text (TRL's
SFTTrainer on language-modelling rows, a `text` column). Domain adaptation before, or
instead of, instruction tuning: the model reads documents, not prompts and answers."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from trl import SFTConfig, SFTTrainer

from ..errors import WorkbenchError
from ._preference import TruncationWarning
from .base import MethodArgs, MethodSpec, length_grouping, register, sampling_strategy


@dataclass
class CPTArgs(MethodArgs):
    packing: bool = field(default=True, metadata={
        "help": "pack documents padding-free into max_length sequences; a longer document is split across "
                "sequences instead of cut (TRL bfd_split)"})
    group_by_length: bool = length_grouping("documents")

    def __post_init__(self):
        super().__post_init__()
        if self.packing and self.group_by_length:
            raise WorkbenchError("method.group_by_length groups unpacked documents; with method.packing=true "
                                 "they are packed into max_length sequences, leaving nothing to group: set one "
                                 "of them false")


def build_cpt_trainer(ctx):
    m = ctx.method_config
    args = SFTConfig(**ctx.trl_args(), dataset_text_field="text", completion_only_loss=False, packing=m.packing,
                     packing_strategy="bfd_split", train_sampling_strategy=sampling_strategy(m))
    return ctx.build(SFTTrainer, args)


def check_document_room(config, method_config, tokenizer, train_dataset) -> None:
    """Unpacked, TRL keeps each document's first `max_length` tokens and never trains on the
    rest: say how many documents lose tokens (packed, nothing is lost)."""
    if method_config.packing or not config.max_length:
        return
    lengths = [len(ids) + 1 for ids in tokenizer(list(train_dataset["text"]))["input_ids"]]  # + EOS
    cut = sum(n > config.max_length for n in lengths)
    if cut:
        lost = sum(max(0, n - config.max_length) for n in lengths)
        warnings.warn(f"{cut} of {len(lengths)} training documents are longer than max_length={config.max_length} "
                      f"tokens; TRL cuts them, so {lost} of {sum(lengths)} tokens are never trained on: raise "
                      "max_length or set method.packing=true", TruncationWarning, stacklevel=2)


register(MethodSpec(
    name="cpt", config_cls=CPTArgs, data_format="text",
    summary="continued pre-training: next-token cross-entropy on every token of raw text (TRL SFTTrainer)",
    build_trainer=build_cpt_trainer, family="sft", check_data=check_document_room))
