"""Fixtures for the analysis tests (`tiny` and `forced` are in tests/conftest.py)."""
import copy
import json

import pytest
import torch


@pytest.fixture
def lora_run(tiny, tmp_path):
    """A run directory as the trainer writes it: config.json + a LoRA adapter in final/."""
    from peft import LoraConfig, get_peft_model
    model, _ = tiny
    torch.manual_seed(1)
    peft = get_peft_model(copy.deepcopy(model),
                          LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"],
                                     init_lora_weights=False))  # random B: the adapter changes outputs
    run = tmp_path / "run-lora"
    peft.save_pretrained(run / "final")
    (run / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "sft"}))
    return run
