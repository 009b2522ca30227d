import json

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run directory (full weights of tiny-llama under final/), made without training."""
    from workbench.models import load_model

    run = tmp_path_factory.mktemp("evalrun") / "run"
    (run / "final").mkdir(parents=True)
    model, tok = load_model("tiny-llama")
    model.save_pretrained(run / "final")
    tok.save_pretrained(run / "final")
    (run / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "sft", "dataset": "arithmetic",
                                                 "peft": "full", "max_steps": 3}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 3, "kind": "train", "loss": 1.0}) + "\n")
    return run


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory):
    """A run directory with a LoRA adapter (random B, so it changes outputs) trained on `arithmetic`."""
    import torch
    from peft import LoraConfig, get_peft_model

    from workbench.models import load_model

    model, _ = load_model("tiny-llama")
    torch.manual_seed(1)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    run = tmp_path_factory.mktemp("evallora") / "run"
    peft.save_pretrained(run / "final")
    (run / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "sft", "dataset": "arithmetic",
                                                 "peft": "lora"}))
    return run
