"""HFT (Half Fine-Tuning, Hui et al. 2024): full fine-tuning in which half of the model's
weight matrices train and the other half stay frozen, chosen per category as the paper
does for LLaMA: in every block 2 of the 4 attention matrices (q, k, v, o); for the 3 FFN
matrices (gate, up, down) 2 in a random half of the blocks and 1 in the other half, so
exactly half of the FFN trains. Every `reselect_every` steps a new stage draws a new
half. The optimizer holds every candidate weight from the start, so a group that returns
in a later stage keeps its Adam state; frozen groups get no gradient and are skipped.
Norms (not covered by the paper's rule) are our reading: a category of their own, halved
by the same rule."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from trl import SFTTrainer

from ..errors import WorkbenchError
from ..peft_menu import transformer_blocks
from ._sft import CommonSFTArgs, check_completion_room, make_trainer, sft_args
from .base import MethodSpec, at_least, register


@dataclass
class HFTArgs(CommonSFTArgs):
    fraction: float = field(default=0.5, metadata={
        "help": "share of the weight matrices of each category that trains in a stage (HFT: 0.5)"})
    reselect_every: int = field(default=0, metadata={
        "help": "steps per stage: draw a new random half every N steps (0 = one stage for the whole run)"})
    train_outside_blocks: bool = field(default=False, metadata={
        "help": "also train embeddings, final norm and head (HFT selects inside the blocks only)"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()
        if not 0 < self.fraction <= 1:
            raise WorkbenchError(f"method.fraction must be in (0, 1], got {self.fraction}")
        at_least(self, 0, "reselect_every")


ATTENTION_NAMES = {"self_attn", "attn", "attention", "self_attention", "cross_attn"}
MLP_NAMES = {"mlp", "feed_forward", "ffn", "feedforward", "block_sparse_moe"}
CATEGORIES = ("attn", "mlp", "norm", "other")


def _category(group: str) -> str:
    """The category of one weight group (a sub-module path inside a block, e.g.
    'self_attn.q_proj'). Norms are tested first, so 'post_attention_layernorm' is a norm,
    not attention; categories are read from whole path components, not substrings."""
    parts = group.lower().split(".")
    if any("norm" in p or p.startswith("ln") for p in parts):
        return "norm"
    if any(p in ATTENTION_NAMES for p in parts):
        return "attn"
    if any(p in MLP_NAMES for p in parts):
        return "mlp"
    return "other"


def weight_groups(model) -> list[dict[str, dict[str, list]]]:
    """Per block: {category: {group: [parameters]}}. A group is one sub-module's weights
    (a projection matrix with its bias, one norm), as the paper counts matrices."""
    blocks = []
    for block in transformer_blocks(model):
        cats: dict[str, dict[str, list]] = {c: {} for c in CATEGORIES}
        for name, p in block.named_parameters():
            group = name.rsplit(".", 1)[0] if "." in name else name
            cats[_category(group)].setdefault(group, []).append(p)
        blocks.append(cats)
    return blocks


def parameter_groups(model) -> list[list[list[tuple[str, object]]]]:
    """Per block, its non-empty categories (attention, FFN, norms, other), each a list of
    (name, parameter): every parameter of every block exactly once."""
    out = []
    for block, cats in zip(transformer_blocks(model), weight_groups(model)):
        ids = {c: {id(p) for ps in groups.values() for p in ps} for c, groups in cats.items()}
        named = list(block.named_parameters())
        out.append([[(n, p) for n, p in named if id(p) in ids[c]] for c in CATEGORIES if ids[c]])
    return out


def choose_groups(model, fraction: float, rng: random.Random) -> list[dict[str, list[str]]]:
    """The groups that train this stage, per block: {category: [group names]}. For each
    category, round(fraction · all its groups in the model) train (a fractional half
    rounds up with that probability); each block trains ⌊fraction · its groups⌋ and the
    remainder goes one each to randomly chosen blocks. At fraction 0.5 on LLaMA: 2 of 4
    attention matrices per block; 2 of 3 FFN matrices in half the blocks, 1 in the rest."""
    blocks = weight_groups(model)
    chosen: list[dict[str, list[str]]] = [{c: [] for c in CATEGORIES} for _ in blocks]
    for cat in CATEGORIES:
        names = [sorted(b[cat]) for b in blocks]
        total = fraction * sum(len(n) for n in names)
        k = math.floor(total + 1e-9)
        if total - k > 1e-9 and rng.random() < total - k:
            k += 1
        quota = [math.floor(fraction * len(n) + 1e-9) for n in names]
        spare = [i for i, n in enumerate(names) if quota[i] < len(n)]
        for i in rng.sample(spare, min(max(k - sum(quota), 0), len(spare))):
            quota[i] += 1
        for i, n in enumerate(names):
            chosen[i][cat] = sorted(rng.sample(n, quota[i]))
    return chosen


def choose_half(model, fraction: float, rng: random.Random) -> list:
    """The parameters that train this stage (see `choose_groups`)."""
    params = []
    for groups, picked in zip(weight_groups(model), choose_groups(model, fraction, rng)):
        for cat, names in picked.items():
            params += [p for name in names for p in groups[cat][name]]
    return params


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
    summary="Half Fine-Tuning: half the weight matrices frozen per stage (2 of 4 attention per block, half the FFN)",
    build_trainer=build_hft_trainer, family="sft", check_data=check_completion_room,
    peft_ok=lambda peft: peft == "full"))
