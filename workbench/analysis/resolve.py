"""Turn what the user names as "base" or "tuned" into a model the probes can run.

A spec is a (model, tokenizer) pair, a built-in model name / hub id / local model dir, a
run directory (`config.json` with `model`, weights under `final/`), or `urial:<spec>`:
that model steered by an in-context alignment prompt instead of training."""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import WorkbenchError


@dataclass
class Side:
    """One side of a comparison: a model, its tokenizer and how to run it."""
    model: object
    tokenizer: object
    name: str
    urial: bool = False            # prepend the URIAL prompt when rendering
    adapter_off: bool = False      # run a PEFT model with its adapter disabled (= its base)
    base_name: str | None = None   # for a run: the model it was tuned from

    def context(self):
        """Context in which to call the model (adapter disabled for a shared-weights base)."""
        return self.model.disable_adapter() if self.adapter_off else contextlib.nullcontext()


def is_run_dir(path) -> bool:
    p = Path(str(path)).expanduser()
    return (p / "config.json").is_file() and (p / "final").is_dir()


def _is_unfinished_run(path) -> bool:
    """A run directory (its config.json is a run config, not a model config) without final/."""
    p = Path(str(path)).expanduser()
    if not (p / "config.json").is_file() or (p / "final").exists():
        return False
    try:
        cfg = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(cfg, dict) and "model_type" not in cfg and "method" in cfg and "model" in cfg


def _load_run(run_dir: Path):
    """(model, tokenizer, base model name) of a run directory."""
    try:  # the run store's loader, when it exists, knows every layout
        from ..runs import load_run_model
    except ImportError:
        load_run_model = None
    if load_run_model is not None:
        return load_run_model(run_dir)

    from ..models import load_model, load_tokenizer
    try:
        base_name = json.loads((run_dir / "config.json").read_text())["model"]
    except (KeyError, json.JSONDecodeError) as e:
        raise WorkbenchError(f"{run_dir}/config.json: cannot read key 'model' ({e})") from e
    final = run_dir / "final"
    if (final / "adapter_config.json").is_file():
        from peft import PeftModel
        model, tok = load_model(base_name)
        model = PeftModel.from_pretrained(model, str(final))
    elif (final / "config.json").is_file():
        model, tok = load_model(str(final))
    else:
        raise WorkbenchError(f"{final}: holds neither an adapter (adapter_config.json) "
                             "nor a full model (config.json)")
    if (final / "tokenizer_config.json").is_file():
        tok = load_tokenizer(str(final))
    return model, tok, base_name


def check_spec(spec) -> None:
    """Cheap checks of a model spec before anything is loaded: a run without weights, a
    directory that is not a model, an unknown name or unreachable hub id."""
    if not isinstance(spec, (str, Path)):
        return
    spec = str(spec).removeprefix("urial:")
    if _is_unfinished_run(spec):
        from ..runs.store import final_weights, open_run

        final_weights(open_run(Path(spec).expanduser()))  # raises: why this run has none
    if not is_run_dir(spec):
        from ..models import resolve
        resolve(spec)


def resolve_side(spec, *, name: str | None = None) -> Side:
    if isinstance(spec, Side):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2:
        model, tok = spec
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return Side(model, tok, name or getattr(model.config, "name_or_path", "model"))
    if not isinstance(spec, (str, Path)):
        raise WorkbenchError(f"expected a model name, run directory, 'urial:<model>' or a "
                             f"(model, tokenizer) pair, got {type(spec).__name__}")
    spec = str(spec)
    if spec.startswith("urial:"):
        inner = resolve_side(spec[len("urial:"):])
        inner.urial, inner.name = True, spec
        return inner
    check_spec(spec)
    if is_run_dir(spec):
        model, tok, base_name = _load_run(Path(spec).expanduser())
        return Side(model, tok, name or spec, base_name=base_name)
    from ..models import load_model
    model, tok = load_model(spec)
    return Side(model, tok, name or spec)


def resolve_pair(base, tuned) -> tuple[Side, Side]:
    """Resolve both sides, sharing weights where we can: a base named like the run's own
    base reuses the run's PEFT model with the adapter disabled, and the same spec twice
    loads once."""
    t = resolve_side(tuned, name=tuned if isinstance(tuned, str) else "tuned")
    if isinstance(base, str) and not base.startswith("urial:"):
        if base == t.base_name and hasattr(t.model, "disable_adapter") and not t.urial:
            return Side(t.model, t.tokenizer, base, adapter_off=True), t
        if isinstance(tuned, str) and base == tuned.removeprefix("urial:"):
            return Side(t.model, t.tokenizer, base), t
    b = resolve_side(base, name=base if isinstance(base, str) else "base")
    check_same_vocab(b, t)
    return b, t


def check_same_vocab(a: Side, b: Side) -> None:
    """Token-level comparisons only make sense over one vocabulary."""
    if a.tokenizer is b.tokenizer:
        return
    va, vb = a.tokenizer.get_vocab(), b.tokenizer.get_vocab()
    if va != vb:
        only_a = len(set(va) - set(vb))
        only_b = len(set(vb) - set(va))
        raise WorkbenchError(
            f"base {a.name!r} and tuned {b.name!r} use different tokenizers "
            f"({len(va)} vs {len(vb)} tokens; {only_a} only in base, {only_b} only in tuned, "
            f"or ids differ); token-level probes need the same vocabulary")
