"""AFT constraint alignment loss on ranked responses (binary correct/incorrect scores or
graded rankings): every better response's length-normalised log-likelihood above every
worse one's, with the worse ones kept within a boundary B below the lowest better one.
No reference. Loss: workbench.methods.losses.aft_loss; trainer: `AFTTrainer` (a
ListObjectiveTrainer)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ._preference import ProbeArgs
from .base import MethodSpec, at_least, register
from .losses import aft_loss
from .trainers.objective import ListObjectiveTrainer, build_objective_trainer


@dataclass
class AFTArgs(ProbeArgs):
    constraint: bool = field(default=True, metadata={
        "help": "keep worse responses' scores within `boundary` of the lowest better one (off = plain alignment loss)"})
    boundary: float = field(default=1.0, metadata={
        "help": "B: how far (nats per token) a worse score may fall below the lowest better score"})
    nll_weight: float = field(default=0.0, metadata={
        "help": "optional NLL on the best-scored responses (0 = pure constraint alignment loss)"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()
        at_least(self, 0, "boundary", "nll_weight")


class AFTTrainer(ListObjectiveTrainer):
    """AFT's loss on ranked lists; reference-free."""

    needs_reference = False

    def list_loss(self, logps, lengths, ref, scores, valid):
        m: AFTArgs = self.method_config
        s = logps / lengths
        loss = aft_loss(s, scores, valid, boundary=m.boundary, constraint=m.constraint)
        if m.nll_weight:
            top = scores.masked_fill(~valid, float("-inf")).max(1, keepdim=True).values
            best = (scores == top) & valid
            loss = loss + m.nll_weight * (-s[best]).mean()
        return loss


def build_aft_trainer(ctx):
    return build_objective_trainer(ctx, AFTTrainer)


register(MethodSpec(
    name="aft", config_cls=AFTArgs, data_format="ranked",
    summary="AFT constraint alignment loss: better above worse, worse kept within a bound (binary or ranked)",
    build_trainer=build_aft_trainer, family="preference"))
