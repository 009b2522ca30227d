"""ORPO (Hong et al., odds-ratio preference optimisation: NLL on the chosen response plus
λ·−log σ(log odds(y_w) − log odds(y_l)), no reference model) through TRL's experimental
ORPOTrainer (trl.experimental.orpo, pinned by tests/methods_pref). Trainer:
`ProbedORPOTrainer` (TRL's ORPOTrainer + the eval-time probes)."""
from __future__ import annotations

from dataclasses import dataclass, field

from trl.experimental.orpo import ORPOConfig, ORPOTrainer

from ._preference import ProbeArgs, check_pair_data, common_args
from ._reference_free import build_probed
from .base import MethodSpec, at_least, positive, register
from .preference_metrics import PreferenceProbeMixin


@dataclass
class ORPOArgs(ProbeArgs):
    beta: float = field(default=0.1, metadata={"help": "λ: weight of the odds-ratio term against the NLL"})
    max_completion_length: int | None = field(default=None, metadata={
        "help": "truncate responses to this many tokens (default: no separate limit)"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()
        positive(self, "beta")
        if self.max_completion_length is not None:
            at_least(self, 1, "max_completion_length")


class ProbedORPOTrainer(PreferenceProbeMixin, ORPOTrainer):
    """TRL's experimental ORPOTrainer plus the eval-time preference probes."""


def build_orpo_trainer(ctx):
    m = ctx.method_config
    args = ORPOConfig(**common_args(ctx), beta=m.beta, max_completion_length=m.max_completion_length)
    return build_probed(ctx, ProbedORPOTrainer, args)


register(MethodSpec(
    name="orpo", config_cls=ORPOArgs, data_format="preference",
    summary="ORPO: NLL + odds-ratio preference term, no reference model (trl.experimental)",
    build_trainer=build_orpo_trainer, family="preference", check_data=check_pair_data))
