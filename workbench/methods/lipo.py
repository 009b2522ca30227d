"""LiPO-λ: listwise preference optimisation over K ranked responses with LambdaRank pair
weights on DPO-style scores s = β·(log π − log π_ref). Loss:
workbench.methods.losses.lipo_lambda_loss; trainer: `LiPOTrainer` (a
ListObjectiveTrainer). The reference is scored on the fly (no precomputation)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import WorkbenchError
from ._preference import ReferenceArgs
from .base import MethodSpec, register
from .losses import lipo_lambda_loss
from .trainers.objective import ListObjectiveTrainer, build_objective_trainer


@dataclass
class LiPOArgs(ReferenceArgs):
    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()  # probe knobs, beta > 0
        if self.precompute_ref_log_probs:
            raise WorkbenchError("method.precompute_ref_log_probs is not supported by lipo; "
                                 "the reference is scored on the fly")


class LiPOTrainer(ListObjectiveTrainer):
    """LiPO-λ on ranked lists; needs the reference (a frozen copy under full fine-tuning,
    TRL's adapter reference under PEFT)."""

    needs_reference = True

    def list_loss(self, logps, lengths, ref, scores, valid):
        return lipo_lambda_loss(self.method_config.beta * (logps - ref), scores, valid)


def build_lipo_trainer(ctx):
    return build_objective_trainer(ctx, LiPOTrainer, beta=ctx.method_config.beta)


register(MethodSpec(
    name="lipo", config_cls=LiPOArgs, data_format="ranked",
    summary="LiPO-λ: listwise DPO-style loss over K ranked responses with LambdaRank weights",
    build_trainer=build_lipo_trainer, family="preference"))
