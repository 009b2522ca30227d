"""KTO (Ethayarajh et al., prospect-theoretic loss on unpaired desirable / undesirable
responses) through TRL's KTOTrainer, with the eval-time preference probes. Trainer:
`ProbedKTOTrainer` (also the base of BCO's)."""
from __future__ import annotations

from dataclasses import dataclass, field

from trl import KTOConfig, KTOTrainer

from ..errors import WorkbenchError
from ._preference import ReferenceArgs, attach_probes, common_args, reference_model
from .base import MethodSpec, at_least, register
from .preference_metrics import PreferenceProbeMixin

KTO_LOSS_TYPES = ("kto", "apo_zero_unpaired")


@dataclass
class KTOArgs(ReferenceArgs):
    loss_type: str = field(default="kto", metadata={
        "help": "kto = KTO with the batch KL baseline; apo_zero_unpaired = APO-zero without it",
        "choices": list(KTO_LOSS_TYPES)})
    desirable_weight: float = field(default=1.0, metadata={
        "help": "weight of desirable examples (raise it when they are the minority)"})
    undesirable_weight: float = field(default=1.0, metadata={"help": "weight of undesirable examples"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()  # loss_type in its choices, probe knobs, beta > 0
        at_least(self, 0, "desirable_weight", "undesirable_weight")


class ProbedKTOTrainer(PreferenceProbeMixin, KTOTrainer):
    """TRL's KTOTrainer plus the eval-time preference probes."""


def check_kto_batch(config, m) -> None:
    """KTO's KL baseline pairs each completion with another prompt of the same batch."""
    if m.loss_type == "kto" and config.batch_size < 2:
        raise WorkbenchError("batch_size: KTO estimates its KL baseline from mismatched pairs in a batch; "
                             f"use >= 2 (got {config.batch_size}), or method.loss_type=apo_zero_unpaired")


def kto_config(ctx, loss_type: str, **extra) -> KTOConfig:
    m = ctx.method_config
    return KTOConfig(**common_args(ctx), beta=m.beta, loss_type=loss_type,
                     desirable_weight=getattr(m, "desirable_weight", 1.0),
                     undesirable_weight=getattr(m, "undesirable_weight", 1.0),
                     precompute_ref_log_probs=m.precompute_ref_log_probs, **extra)


def build_kto_trainer(ctx, trainer_cls=ProbedKTOTrainer, loss_type: str | None = None):
    args = kto_config(ctx, loss_type or ctx.method_config.loss_type)
    ref = reference_model(ctx)  # None under PEFT: TRL's "ref" adapter / adapter-disabled base
    trainer = ctx.build(trainer_cls, args, ref_model=ref)
    return attach_probes(trainer, ctx, reference=ref)


register(MethodSpec(
    name="kto", config_cls=KTOArgs, data_format="unpaired",
    summary="KTO: prospect-theoretic loss on unpaired thumbs-up/down responses (TRL KTOTrainer)",
    build_trainer=build_kto_trainer, family="preference", check=check_kto_batch))
