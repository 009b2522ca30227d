"""Export a run (trained or merged) as a model other tools load without the workbench:

- `safetensors`: the adapter merged into its base (PEFT's `merge_and_unload`), saved with
  the tokenizer and its chat template; `transformers.AutoModelForCausalLM.from_pretrained`
  reads it back.
- `gguf`: llama-architecture models as an F32 or F16 GGUF file written with the `gguf`
  package (its writer, tensor-name map and vocab readers); transformers' own GGUF loader
  (`gguf_file=`) reads it back.

Either way the export is written into a temporary folder, reloaded from there with plain
transformers, and its logits compared with the run's own on a fixed prompt; only an
export that matches within the stated tolerance is renamed into place, and the measured
difference is recorded in `export.json` beside the weights."""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WorkbenchError
from .base import check_new_folder, staging_dir

FORMATS = ("safetensors", "gguf")
GGUF_DTYPES = ("f32", "f16")
# Largest |Δlogit| accepted when the export is read back. The reference is the run as the
# workbench runs it (base + adapter, unmerged), so even an exact f32 export differs by float
# rounding of W + B·A: measured 3e-7 on tiny-llama and 6.5e-5 on SmolLM2-135M.
# f16 rounds every matrix to 11 significant bits: 3e-4 (tiny), 3.0e-2 (SmolLM2).
TOLERANCE = {"safetensors": 5e-4, "f32": 5e-4, "f16": 5e-2}
CHECK_TEXT = "Merging models: the quick brown fox jumps over the lazy dog. 1 + 2 = 3"
EXPORT_JSON = "export.json"


@dataclass
class ExportResult:
    out: Path            # the folder written
    format: str
    file: Path           # the weights file (model.safetensors or the .gguf)
    max_abs_diff: float  # largest |logit difference| against the run, measured on reload
    tolerance: float
    reloaded: object = field(default=None, repr=False)  # the model transformers read back from the export


def check_export_args(run, out, format: str = "safetensors", dtype: str = "f32", tolerance: float | None = None):
    """Every check before anything loads: the run, the format, the tolerance, the output folder."""
    import math

    from .sources import read_source

    if format not in FORMATS:
        raise WorkbenchError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    if dtype not in GGUF_DTYPES:
        raise WorkbenchError(f"unknown GGUF dtype {dtype!r}; known: {', '.join(GGUF_DTYPES)}")
    if format != "gguf" and dtype != "f32":
        raise WorkbenchError(f"--dtype {dtype} is a GGUF tensor type; a {format} export keeps the run's own "
                             "weights (add --format gguf)")
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))
                                  or not math.isfinite(tolerance) or tolerance <= 0):
        raise WorkbenchError(f"--tolerance must be a positive number (the largest |logit difference| accepted "
                             f"on reload), got {tolerance!r}")
    src = read_source(run)
    if format == "gguf":
        cfg_path = src.final / "config.json" if src.kind == "full" else None
        if cfg_path is None:
            from ..models import resolve
            cfg_path = Path(resolve(src.base)) / "config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        if cfg.get("model_type") != "llama":
            raise WorkbenchError(f"GGUF export supports llama-architecture models; run {src.path} is "
                                 f"{cfg.get('model_type')!r} (export it as safetensors instead)")
        rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
        if (rope.get("rope_type") or rope.get("type") or "default") != "default":
            raise WorkbenchError(f"GGUF export: run {src.path} uses rope scaling {rope.get('rope_type')!r}, "
                                 "which this exporter does not write")
    out = Path(out).expanduser()
    check_new_folder(out)
    return src, out


def merged_model(run, device: str | None = "cpu"):
    """(plain transformers model with any adapter merged in, tokenizer) of a run."""
    from ..runs import load_run_model

    model, tok, _ = load_run_model(run, device=device)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.eval()
    if getattr(model.config, "name_or_path", None):
        model.config.name_or_path = ""
    return model, tok


def _logits(model, ids):
    import torch
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def export_run(run, out, format: str = "safetensors", *, dtype: str = "f32", tolerance: float | None = None,
               device: str | None = "cpu") -> ExportResult:
    """Export `run` into the folder `out` (created; must be new or empty). See the module docstring."""
    import torch

    src, out = check_export_args(run, out, format, dtype, tolerance)
    tol = tolerance if tolerance is not None else TOLERANCE["safetensors" if format == "safetensors" else dtype]
    ref_run, ref_tok = _run_reference(src.path, device)
    ids = torch.tensor([ref_tok(CHECK_TEXT)["input_ids"]])
    expected = _logits(ref_run, ids)
    tmp = staging_dir(out)
    try:
        model, tok = merged_model(src.path, device)
        if format == "safetensors":
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            file = tmp / "model.safetensors"
            reloaded = _reload_safetensors(tmp)
        else:
            from .to_gguf import write_gguf

            name = f"{src.name}-{dtype}.gguf"
            file = tmp / name
            write_gguf(model, tok, file, dtype=dtype)
            reloaded = _reload_gguf(tmp, name)
        diff = float((_logits(reloaded, ids) - expected).abs().max())
        if not diff <= tol:
            raise WorkbenchError(f"export check failed: the {format} file read back gives logits up to {diff:.3g} "
                                 f"away from the run's (tolerance {tol:g}); nothing was written")
        info = {"run": str(src.path.resolve()), "format": format, "dtype": dtype if format == "gguf" else "f32",
                "file": file.name, "check_text": CHECK_TEXT, "max_abs_logit_diff": diff, "tolerance": tol,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / EXPORT_JSON).write_text(json.dumps(info, indent=2))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out, format, out / file.name, diff, tol, reloaded)


def _run_reference(path: Path, device):
    """The run as the workbench runs it (adapter active, not merged)."""
    from ..runs import load_run_model

    model, tok, _ = load_run_model(path, device=device)
    return model.eval(), tok


def _reload_safetensors(folder: Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()


def _reload_gguf(folder: Path, name: str):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name, dtype=torch.float32).eval()
