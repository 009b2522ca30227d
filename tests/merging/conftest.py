"""Real tiny runs for the merging tests, trained once per session with the engine:
two LoRA runs and two full fine-tunes of tiny-llama on different built-in data, and a
LoRA run of a *different* base (tiny-llama's architecture, other weights, saved as a
local model directory)."""
from __future__ import annotations

import pytest

FAST = dict(max_steps=2, eval_rows=0, sample_prompts=0, max_rows=16, batch_size=2, max_length=64,
            learning_rate=1e-2, save_steps=100)


def _train(root, name, dataset, peft, model="tiny-llama", **kw):
    from workbench import TrainConfig, train

    cfg = TrainConfig(model=model, dataset=dataset, peft=peft, run_dir=str(root / name), **{**FAST, **kw})
    result = train(cfg)
    assert result.status == "completed"
    return result.run_dir


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge-sources")
    return {
        "a": _train(root, "lora-instructions", "instructions", "lora"),
        "b": _train(root, "lora-tasks", "tasks", "lora"),
        "fa": _train(root, "full-instructions", "instructions", "full"),
        "fb": _train(root, "full-tasks", "tasks", "full"),
    }


@pytest.fixture(scope="session")
def other_base_run(tmp_path_factory):
    """A LoRA run whose base is another model: tiny-llama's shape with other random weights."""
    import torch

    from workbench.models import load_model

    root = tmp_path_factory.mktemp("other-base")
    model, tok = load_model("tiny-llama")
    torch.manual_seed(123)
    model.apply(model._init_weights)
    model.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    return _train(root, "lora-other-base", "instructions", "lora", model=str(root / "base"), max_rows=4)


IDS = [[1, 504, 2385, 28, 3201, 1134, 288, 1941, 30, 2]]  # a fixed token sequence (no tokenizer load)


@pytest.fixture(scope="session")
def logit_ids():
    """The token ids the `logits` fixture runs (a fixture: `from conftest import` picks whichever
    conftest module was imported first)."""
    return IDS


@pytest.fixture(scope="session")
def logits():
    """logits(run_dir_or_model): a run through the workbench's own loader (load_run_model),
    cached per path; logits(dir, light=True) loads the weights with plain transformers/PEFT."""
    cache = {}

    def get(run_dir, light: bool = False):
        key = (str(run_dir), light)
        if key not in cache:
            cache[key] = light_logits(run_dir) if light else run_logits(run_dir)
        return cache[key]
    return get


def light_logits(run_dir):
    """Logits of a run dir loaded directly: full weights, or base + adapter with PEFT."""
    from pathlib import Path

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from workbench.models import resolve

    final = Path(run_dir) / "final"
    if (final / "adapter_config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(resolve("tiny-llama"), dtype=torch.float32)
        model = PeftModel.from_pretrained(model, str(final))
    else:
        model = AutoModelForCausalLM.from_pretrained(str(final), dtype=torch.float32)
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor(IDS)).logits.float()


def run_logits(run_dir):
    """The run's logits as the workbench runs it (load_run_model: base + adapter, or full weights)."""
    from pathlib import Path

    import torch

    from workbench.models import load_model
    from workbench.runs import load_run_model

    if Path(str(run_dir)).is_dir():
        model, tok, _ = load_run_model(run_dir, device="cpu")
    else:  # a model name: the base itself
        model, tok = load_model(str(run_dir), device="cpu")
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor(IDS)).logits.float()
