"""Masked Thought: during training, a random fraction of the response (chain-of-thought)
*input* tokens is replaced by a mask token while the labels stay the original tokens, so
the model must predict each next step from a partly corrupted history. Evaluation sees
clean inputs. The loss is TRL's (NLL or DFT) on the masked inputs."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import SFTTrainer

from ..errors import WorkbenchError
from ._sft import CommonSFTArgs, check_completion_room, make_trainer, sft_args
from .base import MethodSpec, register


@dataclass
class MaskedThoughtArgs(CommonSFTArgs):
    mask_rate: float = field(default=0.2, metadata={
        "help": "probability that each response input token is replaced by the mask token"})
    mask_token: str = field(default="", metadata={
        "help": "token used as the mask ('' = the tokenizer's mask, else unk, else pad token)"})
    loss_type: str = field(default="nll", metadata={
        "help": "nll = cross-entropy; dft = DFT weighting (TRL)", "choices": ["nll", "dft"]})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()
        if not 0 <= self.mask_rate < 1:
            raise WorkbenchError(f"method.mask_rate must be in [0, 1), got {self.mask_rate}")


def mask_response_inputs(input_ids: torch.Tensor, labels: torch.Tensor, rate: float,
                         mask_id: int, generator: torch.Generator):
    """(masked input_ids, boolean mask of replaced positions). Only positions whose label
    is trained (the response) are candidates; labels are not touched."""
    candidates = labels != -100
    draw = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    replaced = candidates & (draw < rate)
    return input_ids.masked_fill(replaced, mask_id), replaced


class MaskedThoughtTrainer(SFTTrainer):
    def __init__(self, *args, mask_rate: float, mask_id: int, seed: int, **kw):
        super().__init__(*args, **kw)
        self.mask_rate = mask_rate
        self.mask_id = mask_id
        self.mask_generator = torch.Generator().manual_seed(seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.model.training and self.mask_rate > 0:
            ids, replaced = mask_response_inputs(inputs["input_ids"], inputs["labels"],
                                                 self.mask_rate, self.mask_id, self.mask_generator)
            inputs = {**inputs, "input_ids": ids}
            candidates = (inputs["labels"] != -100).sum().clamp(min=1)
            self._metrics["train"]["masked_fraction"].append((replaced.sum() / candidates).item())
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)


def mask_token_id(tokenizer, mask_token: str) -> int:
    if mask_token:
        ids = tokenizer.convert_tokens_to_ids([mask_token])
        if not ids or ids[0] is None or ids[0] == tokenizer.unk_token_id and mask_token != tokenizer.unk_token:
            raise WorkbenchError(f"method.mask_token {mask_token!r} is not one token of this tokenizer")
        return ids[0]
    for tid in (tokenizer.mask_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id):
        if tid is not None:
            return tid
    raise WorkbenchError("method.mask_token: the tokenizer has no mask/unk/pad token; set one")


def check_mask_token(config, m) -> None:
    """An explicit mask_token must be one token of the run's tokenizer (checked before the
    run directory exists; loading a tokenizer is cheap)."""
    if m.mask_token:
        from ..models import load_tokenizer

        mask_token_id(load_tokenizer(config.model), m.mask_token)


def build_masked_thought_trainer(ctx):
    m = ctx.method_config
    return make_trainer(MaskedThoughtTrainer, ctx, sft_args(ctx, loss_type=m.loss_type),
                        mask_rate=m.mask_rate, mask_id=mask_token_id(ctx.tokenizer, m.mask_token),
                        seed=ctx.config.seed)


register(MethodSpec(
    name="masked-thought", config_cls=MaskedThoughtArgs, data_format="prompt_completion",
    summary="Masked Thought: randomly mask response input tokens, labels unchanged (logs masked_fraction)",
    build_trainer=build_masked_thought_trainer, family="sft", check_data=check_completion_room, check=check_mask_token))
