"""GRPO and RLOO through TRL's GRPOTrainer / RLOOTrainer with the workbench's reward
functions (task checker, format, length, keywords, Python callable, reward model), sized
for CPU by default: groups of 4, 32-token completions. Both train on `verifiable` rows;
the rows' `answer`/`task` columns reach the reward functions as keyword arguments.
Trainers: TRL's own `GRPOTrainer` and `RLOOTrainer`, sampling on the CPU from a decoding mirror
of the policy (trainers/mirror_sampling.py); everything else is TRL's."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from ..errors import WorkbenchError
from .base import MethodArgs, MethodSpec, at_least, positive, register
from .trainers.mirror_sampling import MirrorSampling

GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


@dataclass
class _RLArgs(MethodArgs):
    rewards: Any = field(default="correct", metadata={
        "help": "reward spec: 'correct', 'correct,format', {correct: 1, length: {weight: 0.2, max_words: 40}}; "
                "rewards: correct, format, length, keywords, python, reward_model"})
    num_generations: int = field(default=4, metadata={
        "help": "group size: completions per prompt (batch_size × grad_accum must be a multiple of it)"})
    num_generations_eval: int = field(default=2, metadata={
        "help": "completions per held-out prompt at evaluation (TRL's knob; its default is num_generations)"})
    max_completion_length: int = field(default=32, metadata={"help": "max tokens per sampled completion"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    num_iterations: int = field(default=1, metadata={"help": "optimisation passes per generated batch (μ)"})
    epsilon: float = field(default=0.2, metadata={"help": "clipping range of the importance ratio"})
    log_completions: bool = field(default=False, metadata={"help": "print sampled completions (TRL rich table)"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        from ..onpolicy.rewards import check_rewards

        super().__post_init__()  # str knobs in their choices
        at_least(self, 1, "max_completion_length", "num_iterations", "num_generations_eval")
        if self.num_generations < 2:
            raise WorkbenchError("method.num_generations must be at least 2: advantages are relative to the group")
        positive(self, "temperature", "epsilon")
        if not 0 < self.top_p <= 1:
            raise WorkbenchError(f"method.top_p must be in (0, 1], got {self.top_p}")
        at_least(self, 0, "beta")
        check_rewards(self.rewards)


@dataclass
class GRPOArgs(_RLArgs):
    beta: float = field(default=0.0, metadata={"help": "KL coefficient to the reference (0 = no reference model)"})
    loss_type: str = field(default="dapo", metadata={
        "help": "TRL GRPO loss aggregation", "choices": list(GRPO_LOSS_TYPES)})
    scale_rewards: str = field(default="group", metadata={
        "help": "divide advantages by the group's std (group), the batch's (batch) or not (none)",
        "choices": ["group", "batch", "none"]})


@dataclass
class RLOOArgs(_RLArgs):
    beta: float = field(default=0.05, metadata={"help": "KL coefficient to the reference (added to the reward)"})
    normalize_advantages: bool = field(default=False, metadata={"help": "normalise the leave-one-out advantages"})


class MirroredGRPOTrainer(MirrorSampling, GRPOTrainer):
    """TRL's GRPOTrainer; on the CPU it samples from a mirror of the policy."""


class MirroredRLOOTrainer(MirrorSampling, RLOOTrainer):
    """TRL's RLOOTrainer; on the CPU it samples from a mirror of the policy."""


def check_groups(c, m) -> None:
    if (c.batch_size * c.grad_accum) % m.num_generations:
        raise WorkbenchError(f"batch_size × grad_accum ({c.batch_size} × {c.grad_accum}) must be a multiple of "
                             f"method.num_generations ({m.num_generations}): each step holds whole groups")


# Evaluation samples `num_generations_eval` completions per held-out prompt, one generate call
# per eval batch. On the CPU, decoding a few rows of a small model is bound by reading the
# weights, so a call over 32 rows costs little more than one over 4 (SmolLM2, 32 tokens: 4.3 s
# against 1.8 s). At batch_size 4, one prompt's group per call, evaluation was 43–48% of a default
# GRPO run (benchmarks/results/eval_share_grpo.md). A GPU keeps about the training batch: its
# memory is the limit.
EVAL_ROWS_PER_CALL = 32


def eval_batch_size(train_batch: int, eval_generations: int, device: str) -> int:
    """Rows per evaluation generate call: whole groups of `eval_generations`, never fewer rows than
    a training batch; on the CPU about EVAL_ROWS_PER_CALL of them."""
    groups = -(-train_batch // eval_generations)  # ceil: TRL needs whole groups in an eval batch
    if device == "cpu":
        groups = max(groups, EVAL_ROWS_PER_CALL // eval_generations)
    return eval_generations * groups


def _config(ctx, config_cls, **extra):
    m = ctx.method_config
    args = ctx.trl_args()
    args.pop("max_length", None)  # prompts are not truncated; completions by max_completion_length
    args["per_device_eval_batch_size"] = eval_batch_size(ctx.config.batch_size, m.num_generations_eval, ctx.device)
    return config_cls(**args, num_generations=m.num_generations, num_generations_eval=m.num_generations_eval,
                      max_completion_length=m.max_completion_length,
                      temperature=m.temperature, top_p=m.top_p, num_iterations=m.num_iterations,
                      epsilon=m.epsilon, beta=m.beta, log_completions=m.log_completions, **extra)


def _build(ctx, trainer_cls, config_cls, **extra):
    from ..onpolicy.rewards import build_rewards

    rewards = build_rewards(ctx.method_config.rewards)
    try:
        args = _config(ctx, config_cls, reward_weights=[r.weight for r in rewards], **extra)
    except (ValueError, NotImplementedError) as e:  # TRL's checks on knob combinations
        raise WorkbenchError(f"method {ctx.config.method!r}: {str(e).splitlines()[0]}") from e
    return ctx.build(trainer_cls, args, reward_funcs=[r.fn for r in rewards])


def build_grpo_trainer(ctx):
    m = ctx.method_config
    return _build(ctx, MirroredGRPOTrainer, GRPOConfig, loss_type=m.loss_type, scale_rewards=m.scale_rewards)


def build_rloo_trainer(ctx):
    return _build(ctx, MirroredRLOOTrainer, RLOOConfig, normalize_advantages=ctx.method_config.normalize_advantages)


register(MethodSpec(
    name="grpo", config_cls=GRPOArgs, data_format="verifiable",
    summary="GRPO: group-relative advantages from verifiable rewards (TRL GRPOTrainer)",
    build_trainer=build_grpo_trainer, family="online", check=check_groups))
register(MethodSpec(
    name="rloo", config_cls=RLOOArgs, data_format="verifiable",
    summary="RLOO: REINFORCE with a leave-one-out baseline from verifiable rewards (TRL RLOOTrainer)",
    build_trainer=build_rloo_trainer, family="online", check=check_groups))
