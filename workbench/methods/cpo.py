"""CPO (Xu et al., contrastive preference optimisation: reference-free DPO-style margin on
total log-probs plus α·NLL on the chosen response) and SimPO (Meng et al.: margin on
*length-normalised* log-probs with a target margin γ) through TRL's experimental
CPOTrainer (trl.experimental.cpo; SimPO = loss_type "simpo", pinned by tests).
Trainer: `ProbedCPOTrainer` (TRL's CPOTrainer + the eval-time probes)."""
from __future__ import annotations

from dataclasses import dataclass, field

from trl.experimental.cpo import CPOConfig, CPOTrainer

from ..errors import WorkbenchError
from ._preference import ProbeArgs, check_pair_data, common_args
from ._reference_free import build_probed
from .base import MethodSpec, at_least, positive, register
from .preference_metrics import PreferenceProbeMixin

CPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "simpo")


@dataclass
class CPOArgs(ProbeArgs):
    loss_type: str = field(default="sigmoid", metadata={
        "help": "pairwise loss on the policy's own log-probs", "choices": list(CPO_LOSS_TYPES)})
    beta: float = field(default=0.1, metadata={"help": "β: scale of the log-prob margin"})
    cpo_alpha: float = field(default=1.0, metadata={"help": "α: weight of the NLL term on the chosen response"})
    simpo_gamma: float = field(default=0.5, metadata={"help": "SimPO target margin γ (loss_type=simpo)"})
    label_smoothing: float = field(default=0.0, metadata={"help": "conservative-DPO label smoothing (sigmoid)"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()  # loss_type in its choices, probe knobs
        positive(self, "beta")
        at_least(self, 0, "cpo_alpha")
        if self.label_smoothing and self.loss_type in ("hinge", "ipo"):
            raise WorkbenchError(f"method.label_smoothing: not supported by loss_type {self.loss_type!r}")


@dataclass
class SimPOArgs(CPOArgs):
    loss_type: str = field(default="simpo", metadata={
        "help": "simpo = sigmoid on length-normalised log-probs minus γ", "choices": list(CPO_LOSS_TYPES)})
    beta: float = field(default=2.0, metadata={"help": "β on per-token log-probs (SimPO paper: 2–2.5)"})
    cpo_alpha: float = field(default=0.0, metadata={"help": "α: NLL weight (SimPO proper uses 0)"})


class ProbedCPOTrainer(PreferenceProbeMixin, CPOTrainer):
    """TRL's experimental CPOTrainer plus the eval-time preference probes."""


def build_cpo_trainer(ctx):
    m = ctx.method_config
    args = CPOConfig(**common_args(ctx), loss_type=m.loss_type, beta=m.beta, cpo_alpha=m.cpo_alpha,
                     simpo_gamma=m.simpo_gamma, label_smoothing=m.label_smoothing)
    return build_probed(ctx, ProbedCPOTrainer, args)


register(MethodSpec(
    name="cpo", config_cls=CPOArgs, data_format="preference",
    summary="CPO: reference-free log-prob margin + NLL on chosen (trl.experimental CPOTrainer)",
    build_trainer=build_cpo_trainer, family="preference", check_data=check_pair_data))
register(MethodSpec(
    name="simpo", config_cls=SimPOArgs, data_format="preference",
    summary="SimPO: length-normalised reference-free margin with target γ (CPOTrainer loss_type=simpo)",
    build_trainer=build_cpo_trainer, family="preference", check_data=check_pair_data))
