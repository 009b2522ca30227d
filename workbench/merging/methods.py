"""The merge methods: one config dataclass each (its knobs, with help text for the CLI
and the widget forms) and a registered `MergeSpec`. The arithmetic is PEFT's
(`peft.utils.merge_utils` for full weights, `add_weighted_adapter` for LoRA runs); the
greedy soup's selection loop lives in `soup.py`."""
from __future__ import annotations

from dataclasses import dataclass, field

from .base import MergeArgs, MergeSpec, check_positive, register

SIGN = ["total", "frequency"]
LORA_MODES = ["delta", "factors"]


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


def _mu():
    from peft.utils import merge_utils
    return merge_utils


def _weights(weights, dtype, device):
    import torch
    return torch.as_tensor(weights, dtype=dtype, device=device)


# ---- knobs ----------------------------------------------------------------------------
@dataclass
class LinearArgs(MergeArgs):
    """Uniform soup (weights default to 1/n each): W = Σ w_i W_i. LoRA runs: Σ w_i ΔW_i,
    exactly (PEFT `cat`)."""


@dataclass
class GreedySoupArgs(MergeArgs):
    """Greedy soup: runs sorted by their held-out loss, each added to the uniform soup only
    if the soup's held-out loss does not get worse."""
    heldout: str | None = _f(None, "held-out data (dataset name or file; its eval split); empty: every "
                                   "source run's own dataset, losses averaged")
    eval_rows: int = _f(16, "held-out rows per dataset")
    max_length: int = _f(128, "completion tokens scored per row")
    batch_size: int = _f(8, "rows per forward pass")

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "eval_rows", "max_length", "batch_size")


@dataclass
class TaskArithmeticArgs(MergeArgs):
    """Task arithmetic: W = W_base + scale · Σ w_i τ_i with τ_i = W_i − W_base."""
    scale: float = _f(1.0, "λ: multiplies the weighted sum of task vectors")


@dataclass
class _DeltaLoraArgs(MergeArgs):
    lora_mode: str = _f("delta", "LoRA runs: 'delta' merges ΔW = B·A·s and refactors it by SVD (PEFT *_svd); "
                                 "'factors' merges A and B separately (PEFT's plain types, same rank needed)",
                        choices=LORA_MODES)
    svd_rank: int | None = _f(None, "LoRA 'delta' mode: rank of the merged adapter (empty: sum of the "
                                    "source ranks, capped at the smallest layer dimension)")

    def __post_init__(self):
        super().__post_init__()
        if self.svd_rank is not None:
            check_positive(self, "svd_rank")


@dataclass
class TiesArgs(_DeltaLoraArgs):
    """TIES: trim each τ_i to its top-density magnitudes, elect a sign per entry, average
    the entries that agree with it."""
    density: float = _f(0.2, "fraction of each task vector kept (largest magnitudes)")
    majority_sign_method: str = _f("total", "sign election: 'total' (sign of Σ τ) or 'frequency' "
                                            "(sign of the count)", choices=SIGN)


@dataclass
class DareArgs(_DeltaLoraArgs):
    """DARE: drop each entry of τ_i with probability 1 − density, rescale the rest by
    1/density, then combine linearly or with TIES."""
    density: float = _f(0.5, "fraction of each task vector kept (at random); the drop rate is 1 − density")
    combination: str = _f("linear", "how the dropped-and-rescaled task vectors combine", choices=["linear", "ties"])
    majority_sign_method: str = _f("total", "sign election for combination 'ties'", choices=SIGN)
    seed: int = _f(0, "seed of the random drop")


@dataclass
class MagnitudePruneArgs(_DeltaLoraArgs):
    """Magnitude prune: keep each τ_i's top-density magnitudes, then the weighted sum."""
    density: float = _f(0.5, "fraction of each task vector kept (largest magnitudes)")


@dataclass
class SvdArgs(MergeArgs):
    """LoRA only: Σ w_i ΔW_i refactored by SVD into one adapter of rank svd_rank."""
    svd_rank: int | None = _f(None, "rank of the merged adapter (empty: the largest source rank, PEFT's default)")
    svd_clamp: float | None = _f(None, "quantile at which to clamp the SVD factors (empty: no clamping)")

    def __post_init__(self):
        super().__post_init__()
        if self.svd_rank is not None:
            check_positive(self, "svd_rank")
        if self.svd_clamp is not None and not 0 < self.svd_clamp <= 1:
            from ..errors import WorkbenchError
            raise WorkbenchError(f"merge.svd_clamp must be in (0, 1], got {self.svd_clamp!r}")


@dataclass
class CatArgs(MergeArgs):
    """LoRA only: the adapters side by side (rank = Σ r_i), so Σ w_i ΔW_i exactly."""


# ---- combiners (full-weight runs, one parameter at a time) -----------------------------
def _linear(knobs, tensors, weights):
    return _mu().task_arithmetic(tensors, _weights(weights, tensors[0].dtype, tensors[0].device))


def _task_arithmetic(knobs, tensors, weights):
    w = _weights(weights, tensors[0].dtype, tensors[0].device) * knobs.scale
    return _mu().task_arithmetic(tensors, w)


def _ties(knobs, tensors, weights):
    w = _weights(weights, tensors[0].dtype, tensors[0].device)
    return _mu().ties(tensors, w, knobs.density, knobs.majority_sign_method)


def _dare(knobs, tensors, weights):
    w = _weights(weights, tensors[0].dtype, tensors[0].device)
    if knobs.combination == "ties":
        return _mu().dare_ties(tensors, w, knobs.density, knobs.majority_sign_method)
    return _mu().dare_linear(tensors, w, knobs.density)


def _magnitude_prune(knobs, tensors, weights):
    w = _weights(weights, tensors[0].dtype, tensors[0].device)
    return _mu().magnitude_prune(tensors, w, knobs.density)


def _delta_lora(kind: str):
    return lambda knobs: kind + ("_svd" if knobs.lora_mode == "delta" else "")


register(MergeSpec("linear", LinearArgs, "uniform / weighted soup: average of the runs' weights",
                   _linear, lambda k: "cat", on_deltas=False, default_weight="uniform"))
register(MergeSpec("greedy_soup", GreedySoupArgs, "greedy soup: add a run only if the held-out loss does not "
                   "get worse", _linear, lambda k: "cat", on_deltas=False, default_weight="uniform"))
register(MergeSpec("task_arithmetic", TaskArithmeticArgs, "task arithmetic: base + scale · Σ w_i τ_i",
                   _task_arithmetic, lambda k: "cat"))
register(MergeSpec("ties", TiesArgs, "TIES: trim, elect sign, disjoint mean of task vectors",
                   _ties, _delta_lora("ties")))
register(MergeSpec("dare", DareArgs, "DARE: random drop and rescale of task vectors, linear or TIES combination",
                   _dare, lambda k: f"dare_{k.combination}" + ("_svd" if k.lora_mode == "delta" else "")))
register(MergeSpec("magnitude_prune", MagnitudePruneArgs, "magnitude prune: keep each task vector's largest "
                   "entries, weighted sum", _magnitude_prune, _delta_lora("magnitude_prune")))
register(MergeSpec("svd", SvdArgs, "LoRA only: weighted sum of the adapters' ΔW, refactored by SVD",
                   None, lambda k: "svd"))
register(MergeSpec("cat", CatArgs, "LoRA only: adapters concatenated (rank Σ r_i), exact weighted sum",
                   None, lambda k: "cat"))
