"""The one entry point, `select(...)`, the `Selection` it returns, and the strategy
registry. Each strategy lives in its own module and registers itself with `@strategy`."""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..config import dataclass_from_args
from ..errors import UnknownNameError, WorkbenchError
from .text import to_pool


@dataclass
class Selection:
    """What a strategy chose: `indices` into the pool (in the strategy's preference
    order), one `scores` value per pool row (higher = preferred; None where the strategy
    has no per-row score) and strategy-specific `diagnostics`."""
    strategy: str
    indices: list[int]
    scores: np.ndarray | None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    knobs: dict[str, Any] = field(default_factory=dict)

    def subset(self, dataset):
        """The chosen rows as a `datasets.Dataset`, in selection order."""
        return dataset.select(self.indices)

    def summary(self) -> str:
        """One line for the CLI and logs."""
        n = self.diagnostics.get("pool_size", "?")
        parts = [f"{self.strategy}: chose {len(self.indices)} of {n} rows"]
        if self.scores is not None and len(self.indices):
            chosen = self.scores[self.indices]
            parts.append(f"score chosen mean {np.nanmean(chosen):.4g} vs pool {np.nanmean(self.scores):.4g}")
        for key in ("kl_reduction", "clusters_covered", "dropped_near_duplicates", "filled", "short_of_k"):
            if key in self.diagnostics:
                v = self.diagnostics[key]
                parts.append(f"{key} {v:.4g}" if isinstance(v, float) else f"{key} {v}")
        return "; ".join(parts)


@dataclass(frozen=True)
class StrategySpec:
    name: str
    knobs: type            # dataclass of the strategy's knobs (fields carry help text)
    run: Callable          # run(pool, k, rng, knobs) -> (indices, scores, diagnostics)
    summary: str


_REGISTRY: dict[str, StrategySpec] = {}


def strategy(name: str, knobs: type, summary: str):
    """Register a strategy function under `name`."""
    def deco(fn):
        known = _REGISTRY.get(name)
        if known is not None and (known.run.__module__, known.run.__qualname__) != (fn.__module__, fn.__qualname__):
            raise WorkbenchError(f"selection strategy {name!r} is already registered; choose another name")
        _REGISTRY[name] = StrategySpec(name, knobs, fn, summary)
        return fn
    return deco


def list_strategies() -> list[StrategySpec]:
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def get_strategy(name: str) -> StrategySpec:
    if name not in _REGISTRY:
        raise UnknownNameError("selection strategy", name, _REGISTRY)
    return _REGISTRY[name]


def resolve_budget(n: int, k: int | None, fraction: float | None) -> int:
    """Exactly one of k / fraction → a row count in [1, n]."""
    if (k is None) == (fraction is None):
        raise WorkbenchError("selection: give exactly one of k (rows) or fraction (0-1 of the pool)")
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise WorkbenchError(f"selection: fraction must be in (0, 1], got {fraction!r}")
        k = max(1, int(round(fraction * n)))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise WorkbenchError(f"selection: k must be a positive integer, got {k!r}")
    if k > n:
        raise WorkbenchError(f"selection: k={k} is larger than the pool ({n} rows)")
    return int(k)


def select(dataset, strategy: str, k: int | None = None, fraction: float | None = None, *,
           seed: int = 0, **knobs) -> Selection:
    """Choose k rows (or a fraction) of `dataset` with the named strategy.

    `dataset` is a `datasets.Dataset` in a canonical shape (prompt_completion, messages,
    text, preference) or a list of such row dicts. Strategy knobs are keyword arguments;
    `list_strategies()` shows each strategy's knobs and their help.
    """
    spec = get_strategy(strategy)
    cfg = dataclass_from_args(spec.knobs, knobs, where=f"selection.{strategy}")
    pool = to_pool(dataset)
    n_rows = resolve_budget(len(pool), k, fraction)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise WorkbenchError(f"selection: seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(seed)
    indices, scores, diag = spec.run(pool, n_rows, rng, cfg)
    indices = [int(i) for i in indices]
    # A filtering strategy (ifd with above_max=drop, as its reference does) may return fewer
    # rows than asked and says so with diagnostics["short_of_k"]; anything else is a bug.
    expect = n_rows - int(diag.get("short_of_k", 0))
    if len(indices) != expect or len(set(indices)) != expect:  # a strategy bug, not user input
        raise RuntimeError(f"strategy {strategy} returned {len(indices)} indices "
                           f"({len(set(indices))} distinct) for k={n_rows}")
    if expect < n_rows:
        warnings.warn(f"selection.{strategy}: only {expect} of the k={n_rows} rows asked for pass its filter; "
                      f"returning {expect} (see the strategy's knobs to relax the filter)", stacklevel=2)
    diag = {"pool_size": len(pool), "k": n_rows, **diag}
    if pool.categories is not None:
        diag.setdefault("coverage_before", _counts(pool.categories))
        diag.setdefault("coverage_after", _counts([pool.categories[i] for i in indices]))
    return Selection(strategy, indices, None if scores is None else np.asarray(scores, dtype=float),
                     diag, _describe_knobs(cfg))


def _describe_knobs(cfg) -> dict[str, Any]:
    """Knob values as given, with arrays and callables named instead of copied."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if hasattr(v, "shape"):
            v = f"<array {tuple(v.shape)}>"
        elif callable(v):
            v = f"<callable {getattr(v, '__name__', type(v).__name__)}>"
        out[f.name] = v
    return out


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, highest first (ties broken by index, stable)."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return order[:k]
