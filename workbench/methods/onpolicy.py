"""On-policy alignment rounds (iterative / online preference optimisation, AFT-style
self-sampled data): sample from the current policy, label with verifiable rewards, build
pairs or lists, train with any preference objective, evaluate, repeat.
The loop itself is workbench.onpolicy.loop.OnPolicyCoordinator."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import dataclass_from_args
from ..errors import WorkbenchError
from .base import MethodArgs, MethodSpec, at_least, get_method, register

OBJECTIVE_FORMATS = ("preference", "ranked", "unpaired")


def _objective(name: str):
    spec = get_method(name)
    if spec.data_format not in OBJECTIVE_FORMATS or spec.name.startswith("onpolicy"):
        raise WorkbenchError(f"method.objective {name!r} trains on {spec.data_format!r} data; the on-policy loop "
                             f"needs a preference objective ({', '.join(OBJECTIVE_FORMATS)} data), "
                             "e.g. dpo, aft, kto, lipo")
    return spec


@dataclass
class OnPolicyArgs(MethodArgs):
    objective: str = field(default="dpo", metadata={
        "help": "preference method trained each round "
                "(dpo, aft, kto, lipo, … — any with preference/ranked/unpaired data)"})
    objective_args: dict = field(default_factory=dict, metadata={
        "help": "the objective's own knobs, e.g. {beta: 0.1} (see its card)"})
    rounds: int = field(default=2, metadata={
        "help": "sample → train → evaluate rounds; max_steps is split across them"})
    prompts_per_round: int = field(default=16, metadata={
        "help": "training prompts sampled each round (fresh ones each round)"})
    k: int = field(default=4, metadata={"help": "completions sampled per prompt"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (> 0)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    max_new_tokens: int = field(default=64, metadata={"help": "max tokens per sampled completion"})
    sample_batch_size: int = field(default=8, metadata={
        "help": "prompts per generate call (each expands to k sequences)"})
    rewards: Any = field(default="correct", metadata={
        "help": "reward spec: 'correct', 'correct,format', {correct: 1, length: {weight: 0.2, max_words: 40}}; "
                "rewards: correct, format, length, keywords, python, reward_model. A python reward (`file.py:name` or "
                "`module:name`) imports that file and executes its top-level code in the training process: a "
                "code-execution opt-in, so name only files you trust."})
    builder: str = field(default="auto", metadata={
        "help": "how samples become training rows: auto (by the objective's data), "
                "best_vs_worst, all_pairs, ranked, unpaired",
        "choices": ["auto", "best_vs_worst", "all_pairs", "ranked", "unpaired"]})
    max_pairs_per_prompt: int | None = field(default=None, metadata={"help": "all_pairs: cap per prompt (None = all)"})
    label_threshold: float | None = field(default=None, metadata={
        "help": "unpaired: reward above which a sample is desirable (None = above its group's mean)"})
    eval_max_new_tokens: int = field(default=64, metadata={"help": "max tokens per greedy held-out answer"})
    progress: bool = field(default=True, metadata={"help": "tqdm bars while sampling and evaluating"})

    def __post_init__(self):
        # Validated here so a bad knob fails before the engine creates the run directory.
        from ..onpolicy.builders import DEFAULT_FOR_FORMAT, get_builder
        from ..onpolicy.rewards import check_rewards

        super().__post_init__()
        at_least(self, 1, "rounds", "prompts_per_round", "k", "max_new_tokens", "sample_batch_size",
                 "eval_max_new_tokens")
        if self.k < 2:
            raise WorkbenchError("method.k must be at least 2: pairs need two samples per prompt")
        if not self.temperature > 0:
            raise WorkbenchError("method.temperature must be > 0 to sample k different completions, "
                                 f"got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise WorkbenchError(f"method.top_p must be in (0, 1], got {self.top_p}")
        spec = _objective(self.objective)
        self.objective_config()  # checks objective_args against the objective's dataclass
        builder = get_builder(DEFAULT_FOR_FORMAT[spec.data_format] if self.builder == "auto" else self.builder)
        if builder.data_format != spec.data_format:
            raise WorkbenchError(f"method.builder {builder.name!r} makes {builder.data_format!r} rows but objective "
                                 f"{spec.name!r} trains on {spec.data_format!r}")
        check_rewards(self.rewards)

    def objective_config(self):
        return dataclass_from_args(_objective(self.objective).config_cls, self.objective_args,
                                   where=f"method.objective_args ({self.objective})")


@dataclass
class OnPolicyDPOArgs(OnPolicyArgs):
    objective: str = field(default="dpo", metadata={"help": "preference method trained each round (default DPO)"})


@dataclass
class OnPolicyAFTArgs(OnPolicyArgs):
    objective: str = field(default="aft", metadata={
        "help": "preference method trained each round (default AFT: constraint alignment on ranked samples)"})


def build_onpolicy_coordinator(ctx):
    from ..onpolicy.loop import OnPolicyCoordinator

    m = ctx.method_config
    return OnPolicyCoordinator(ctx, _objective(m.objective), m.objective_config())


def check_onpolicy(config, m) -> None:
    if m.rounds > config.max_steps:
        raise WorkbenchError(f"max_steps ({config.max_steps}) is split across rounds: give at least one step "
                             f"per round (method.rounds={m.rounds})")
    # Each round trains the objective with the run's batch settings: its own checks apply too (e.g. KTO's batch size).
    _objective(m.objective).check(config, m.objective_config())


for _name, _cls, _summary in (
        ("onpolicy", OnPolicyArgs,
         "on-policy rounds: sample, verify, build pairs, train any preference objective, repeat"),
        ("onpolicy-dpo", OnPolicyDPOArgs,
         "iterative/online DPO: each round's pairs sampled from the current policy, labelled by a checker"),
        ("onpolicy-aft", OnPolicyAFTArgs, "AFT on self-sampled, checker-ranked answers, round after round")):
    register(MethodSpec(name=_name, config_cls=_cls, data_format="verifiable", summary=_summary,
                        build_trainer=build_onpolicy_coordinator, family="online", check=check_onpolicy,
                        coordinated=True))
