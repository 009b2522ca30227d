"""HFT (Half Fine-Tuning): full fine-tuning in which a random half of each transformer
block's parameter groups is frozen; every `reselect_every` steps a new stage draws a new
half. The optimizer holds every candidate weight from the start, so a group that returns
in a later stage keeps its Adam state; frozen groups get no gradient and are skipped."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from trl import SFTTrainer

from ..errors import WorkbenchError
from ..peft_menu import transformer_blocks
from ._sft import CommonSFTArgs, make_trainer, sft_args
from .base import MethodSpec, at_least, register


@dataclass
class HFTArgs(CommonSFTArgs):
    fraction: float = field(default=0.5, metadata={
        "help": "share of each block's parameter groups that trains in a stage (HFT: one half)"})
    reselect_every: int = field(default=0, metadata={
        "help": "steps per stage: draw a new random half every N steps (0 = one stage for the whole run)"})
    train_outside_blocks: bool = field(default=False, metadata={
        "help": "also train embeddings, final norm and head (HFT selects inside the blocks only)"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()
        if not 0 < self.fraction <= 1:
            raise WorkbenchError(f"method.fraction must be in (0, 1], got {self.fraction}")
        at_least(self, 0, "reselect_every")


def parameter_groups(model) -> list[list[tuple[str, object]]]:
    """Per block, its groups by category: attention weights, MLP weights, norms. A group is
    one named parameter tensor (inference: the paper's 'parameter group' = one matrix)."""
    blocks = []
    for block in transformer_blocks(model):
        cats: dict[str, list] = {"attn": [], "mlp": [], "other": []}
        for name, p in block.named_parameters():
            key = "attn" if "attn" in name or "attention" in name else "mlp" if "mlp" in name else "other"
            cats[key].append((name, p))
        blocks.append([c for c in cats.values() if c])
    return blocks


def choose_half(model, fraction: float, rng: random.Random) -> list:
    """The parameters that train this stage: in every block and category, a random
    `fraction` of the groups (at least one)."""
    chosen = []
    for block in parameter_groups(model):
        for cat in block:
            k = max(1, round(fraction * len(cat)))
            chosen += [p for _, p in rng.sample(cat, k)]
    return chosen


class HFTTrainer(SFTTrainer):
    def __init__(self, *args, fraction: float, reselect_every: int, train_outside_blocks: bool,
                 seed: int, **kw):
        super().__init__(*args, **kw)
        self.fraction = fraction
        self.reselect_every = reselect_every
        self.train_outside_blocks = train_outside_blocks
        self.hft_seed = seed
        self.hft_stage = -1
        self.candidates = [p for p in self.model.parameters()]
        self.select_stage(0)

    def select_stage(self, stage: int) -> None:
        """Freeze everything, then unfreeze this stage's half (deterministic per stage)."""
        rng = random.Random(self.hft_seed * 1_000_003 + stage)
        self.model.requires_grad_(False)
        if self.train_outside_blocks:
            in_blocks = {id(p) for p in transformer_blocks(self.model).parameters()}
            for p in self.model.parameters():
                if id(p) not in in_blocks:
                    p.requires_grad_(True)
        for p in choose_half(self.model, self.fraction, rng):
            p.requires_grad_(True)
        self.hft_stage = stage

    def create_optimizer(self, *args, **kw):
        # Every candidate joins the optimizer; the stage's selection is then restored.
        for p in self.candidates:
            p.requires_grad_(True)
        try:
            return super().create_optimizer(*args, **kw)
        finally:
            self.select_stage(max(self.hft_stage, 0))

    def training_step(self, model, inputs, num_items_in_batch=None):
        step = self.state.global_step
        stage = step // self.reselect_every if self.reselect_every else 0
        if stage != self.hft_stage:
            self.select_stage(stage)
        self._metrics["train"]["hft_stage"].append(float(stage))
        return super().training_step(model, inputs, num_items_in_batch)


def build_hft_trainer(ctx):
    m = ctx.method_config
    return make_trainer(HFTTrainer, ctx, sft_args(ctx), fraction=m.fraction,
                        reselect_every=m.reselect_every, train_outside_blocks=m.train_outside_blocks,
                        seed=ctx.config.seed)


register(MethodSpec(
    name="hft", config_cls=HFTArgs, data_format="prompt_completion",
    summary="Half Fine-Tuning: full FT with a random half of each block's weights frozen per stage",
    build_trainer=build_hft_trainer, family="sft",
    peft_ok=lambda peft: peft == "full"))
