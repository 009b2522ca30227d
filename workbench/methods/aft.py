"""AFT constraint alignment loss on ranked responses (binary correct/incorrect scores or
graded rankings): every better response's length-normalised log-likelihood above every
worse one's, with the worse ones kept within a boundary B below the lowest better one,
plus the SFT (NLL) term on the best responses. No reference. Loss:
workbench.methods.losses.aft_loss; trainer: `AFTTrainer` (a ListObjectiveTrainer)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ._preference import ProbeArgs
from .base import MethodSpec, at_least, register
from .losses import aft_loss
from .losses.aft import CONSTRAINT_FORMS
from .trainers.objective import ListObjectiveTrainer, build_objective_trainer


@dataclass
class AFTArgs(ProbeArgs):
    constraint: bool = field(default=True, metadata={
        "help": "keep worse responses' scores within `boundary` of the lowest better one (off = plain alignment loss)"})
    boundary: float = field(default=1.0, metadata={
        "help": "B: how far (nats per token) a worse score may fall below the lowest better score"})
    constraint_form: str = field(default="soft", metadata={
        "help": "soft = log(1 + Σ exp(floor − s)) as the paper; hinge = Σ max(0, floor − s)",
        "choices": CONSTRAINT_FORMS})
    nll_weight: float = field(default=1.0, metadata={
        "help": "weight of the SFT (NLL) term on the best-scored responses (paper: 1; 0 = alignment loss only)"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()
        at_least(self, 0, "boundary", "nll_weight")


class AFTTrainer(ListObjectiveTrainer):
    """AFT's loss on ranked lists; reference-free."""

    needs_reference = False

    def list_loss(self, logps, lengths, ref, scores, valid):
        m: AFTArgs = self.method_config
        return aft_loss(logps / lengths, scores, valid, boundary=m.boundary, constraint=m.constraint,
                        constraint_form=m.constraint_form, nll_weight=m.nll_weight)


def build_aft_trainer(ctx):
    return build_objective_trainer(ctx, AFTTrainer)


register(MethodSpec(
    name="aft", config_cls=AFTArgs, data_format="ranked",
    summary="AFT: constraint alignment loss (better above worse, worse kept within a bound) + SFT term",
    build_trainer=build_aft_trainer, family="preference"))
