"""LoRA runs over one base: PEFT's `add_weighted_adapter` does the merging. The sources
load as adapters `src0, src1, …` of one PeftModel; the merged adapter is added as
`default` (so it saves at the top of final/, like a trained run's) and the sources are
deleted."""
from __future__ import annotations

MERGED = "default"


def load_adapters(base_model, finals: list[str]):
    """One PeftModel holding every source adapter, named src0, src1, …"""
    from peft import PeftModel

    names = [f"src{i}" for i in range(len(finals))]
    model = PeftModel.from_pretrained(base_model, finals[0], adapter_name=names[0])
    for name, final in zip(names[1:], finals[1:]):
        model.load_adapter(final, adapter_name=name)
    model.eval()
    return model, names


def max_rank(model) -> int:
    """The largest rank a merged adapter can have: the smallest in/out dimension of a targeted layer."""
    from peft.tuners.lora import LoraLayer

    dims = [min(m.in_features, m.out_features) for m in model.modules()
            if isinstance(m, LoraLayer) and hasattr(m, "in_features")]
    return min(dims) if dims else 1 << 30


def add_merged(model, names: list[str], weights: list[float], combination: str, *, name: str = MERGED,
               density: float | None = None, svd_rank: int | None = None, svd_clamp: float | None = None,
               majority_sign_method: str = "total", ranks: list[int] | None = None) -> str:
    """Add the merged adapter `name` (PEFT's add_weighted_adapter) and make it active."""
    if combination.endswith("_svd") and svd_rank is None and ranks:
        svd_rank = min(sum(ranks), max_rank(model))
    kwargs = {"svd_rank": svd_rank, "svd_clamp": svd_clamp, "density": density,
              "majority_sign_method": majority_sign_method}
    if combination.endswith("svd"):
        kwargs["svd_full_matrices"] = False  # the same top-r factors, without the full U and V
    model.add_weighted_adapter(list(names), [float(w) for w in weights], name, combination_type=combination,
                               **{k: v for k, v in kwargs.items() if v is not None})
    model.set_adapter(name)
    return name


def keep_only(model, name: str = MERGED) -> None:
    """Delete every adapter but `name`."""
    for other in [a for a in list(model.peft_config) if a != name]:
        model.delete_adapter(other)
    model.set_adapter(name)
