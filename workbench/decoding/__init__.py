"""Decoding-time alignment: one interface (`Decoder`) for every model source × every
registered strategy (plain, urial, best_of_n, reward_search, proxy_tuning, weak_to_strong,
instructive, lookback, contrastive). Cards: docs/decoding.md.

Names are imported lazily so `workbench.analysis` can import `workbench.decoding.urial`
without a cycle."""
from __future__ import annotations

_EXPORTS = {
    "Decoder": "generator", "Generation": "generator", "load_side": "generator", "clear_cache": "generator",
    "DecodeArgs": "base", "StrategySpec": "base", "register": "base", "get_strategy": "base",
    "list_strategies": "base", "strategy_config": "base",
    "contrastive_generate": "contrastive", "ContrastiveResult": "contrastive",
    "URIAL_SYSTEM": "urial", "URIAL_EXAMPLES": "urial",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
