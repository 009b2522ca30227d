"""Model merging: combine finished runs (LoRA adapters over one base, or full fine-tunes)
into a new run-shaped directory, with PEFT's merge arithmetic; and export a run as plain
safetensors or GGUF. Importing this package is cheap: torch, transformers and PEFT load
on first use.

    from workbench import merge
    merge(["runs/a", "runs/b"], "ties", density=0.3, out="runs/a+b-ties")
"""
from .base import MergeArgs, MergeSpec, get_merge_method, list_merge_methods, register


def merge(runs, method: str = "linear", **kwargs):
    """See `workbench.merging.api.merge`."""
    from .api import merge as _merge
    return _merge(runs, method, **kwargs)


def export_run(run, out, format: str = "safetensors", **kwargs):
    """See `workbench.merging.export.export_run`."""
    from .export import export_run as _export
    return _export(run, out, format=format, **kwargs)


__all__ = ["MergeArgs", "MergeSpec", "export_run", "get_merge_method", "list_merge_methods", "merge", "register"]
