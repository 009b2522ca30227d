"""The held-out metric a greedy soup (and the merging notebook) judges a model by: mean
negative log-likelihood per completion token on a dataset's eval split (lower is better),
computed with the analysis layer's batched scorer."""
from __future__ import annotations

import numpy as np


def heldout_rows(dataset: str, eval_rows: int) -> tuple[list, list]:
    """(prompts, completions) of the first `eval_rows` rows of the eval split."""
    from ..data import load

    ds = load(dataset, format="prompt_completion", split="eval", max_rows=eval_rows)
    return list(ds["prompt"]), list(ds["completion"])


def heldout_loss(model, tokenizer, rows: tuple[list, list], *, max_length: int = 128, batch_size: int = 8) -> float:
    """Mean NLL per completion token of `model` on `rows`."""
    from ..analysis.likelihood import completion_logprobs
    from ..analysis.resolve import Side

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    sums, counts = completion_logprobs(Side(model, tokenizer, "model"), rows[0], rows[1],
                                       batch_size=batch_size, max_length=max_length, precision="fp32")
    return float(-np.sum(sums) / max(1, int(np.sum(counts))))


def heldout_table(models: dict, datasets: list[str], *, eval_rows: int = 16, max_length: int = 128,
                  batch_size: int = 8):
    """pandas DataFrame, one row per model (label → run directory or model name), one column
    per dataset: mean held-out NLL per completion token (lower is better). LoRA runs over
    one base share one loaded base model (each adapter is loaded beside the others and
    switched on in turn), so scoring a dozen merges costs one model load."""
    import contextlib
    from pathlib import Path

    import pandas as pd
    import torch

    from ..models import load_model
    from ..runs import load_run_model, open_run

    sets = {d: heldout_rows(d, eval_rows) for d in datasets}
    shared: dict = {}   # base name -> [model (plain, later PeftModel), tokenizer]

    def base(name):
        if name not in shared:
            shared[name] = list(load_model(name, device="cpu"))
        return shared[name]

    out = []
    for i, (label, spec) in enumerate(models.items()):
        path = Path(str(spec))
        ctx = contextlib.nullcontext()
        if (path / "final" / "adapter_config.json").is_file():
            entry = base(open_run(path).config["model"])
            name = f"m{i}"
            if hasattr(entry[0], "load_adapter") and hasattr(entry[0], "peft_config"):
                entry[0].load_adapter(str(path / "final"), adapter_name=name)
            else:
                from peft import PeftModel
                entry[0] = PeftModel.from_pretrained(entry[0], str(path / "final"), adapter_name=name)
            entry[0].set_adapter(name)
            model, tok = entry
        elif (path / "final").is_dir():
            model, tok, _ = load_run_model(path, device="cpu")
        else:
            model, tok = base(str(spec))
            if hasattr(model, "disable_adapter"):
                ctx = model.disable_adapter()
        model.eval()
        with ctx, torch.no_grad():
            out.append({"model": label, **{d: heldout_loss(model, tok, rows, max_length=max_length,
                                                           batch_size=batch_size) for d, rows in sets.items()}})
    return pd.DataFrame(out).set_index("model")
