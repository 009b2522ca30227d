"""Aligned SFT (ASFT): absolute likelihood on each response of a pair — push the chosen
one up and the rejected one down through the sigmoid of its own log-odds
log(P/(1 − P)), P the length-normalised likelihood, plus NLL on the chosen; no reference
model, no Bradley–Terry margin. Loss: workbench.methods.losses.asft_loss; trainer:
`ASFTTrainer` (a PairObjectiveTrainer)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ._preference import ProbeArgs, check_pair_data
from .base import MethodSpec, positive, register
from .losses import asft_loss
from .trainers.objective import PairObjectiveTrainer, build_objective_trainer


@dataclass
class ASFTArgs(ProbeArgs):
    beta: float = field(default=1.0, metadata={
        "help": "β: tempering of the log-odds inside each sigmoid (1 = the paper's ASFT; β is a later addition)"})
    lam: float = field(default=1.0, metadata={"help": "λ: weight of the absolute-likelihood alignment term"})
    nll_weight: float = field(default=1.0, metadata={
        "help": "weight of the NLL (SFT) term on the chosen response (paper: 1)"})
    length_normalize: bool = field(default=True, metadata={
        "help": "P = exp(mean per-token log-prob), as the paper (else exp(total log-prob))"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()
        positive(self, "beta")


class ASFTTrainer(PairObjectiveTrainer):
    """ASFT's loss on TRL's pair batches; reference-free (the reference, if any, only
    serves the probes)."""

    needs_reference = False

    def pair_loss(self, chosen, rejected, chosen_len, rejected_len, ref_chosen, ref_rejected, chosen_nll):
        m: ASFTArgs = self.method_config
        c, r = (chosen / chosen_len, rejected / rejected_len) if m.length_normalize else (chosen, rejected)
        return asft_loss(c, r, chosen_nll, beta=m.beta, lam=m.lam, nll_weight=m.nll_weight)


def build_asft_trainer(ctx):
    return build_objective_trainer(ctx, ASFTTrainer, beta=ctx.method_config.beta)


register(MethodSpec(
    name="asft", config_cls=ASFTArgs, data_format="preference",
    summary="Aligned SFT: log-odds of chosen up, of rejected down (absolute, not a margin); no reference",
    build_trainer=build_asft_trainer, family="preference", check_data=check_pair_data))
