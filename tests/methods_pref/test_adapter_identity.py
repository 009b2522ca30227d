"""`adapter_is_identity`: true only where a PEFT policy computes bit for bit what its
reference (the adapter disabled) computes; the first DPO evaluation and the KL probe skip a
pass on its word, so every adapter that is only close to the identity must be refused. One
table drives the cases; the true ones are checked against the logits themselves."""
import pytest
import torch
from peft import IA3Config, LoraConfig, PrefixTuningConfig, get_peft_model

from workbench.methods._preference import REF_ADAPTER, adapter_is_identity
from workbench.models import load_model

LINEAR = ["q_proj", "v_proj"]
CASES = {  # name -> (PEFT config, identity?)
    "lora": (LoraConfig(r=4, target_modules=LINEAR), True),
    "lora-all-linear-bias": (LoraConfig(r=4, target_modules="all-linear", lora_bias=True), True),
    "lora-embedding": (LoraConfig(r=4, target_modules=["embed_tokens"]), True),
    "rslora": (LoraConfig(r=4, target_modules=LINEAR, use_rslora=True), True),
    "dora": (LoraConfig(r=4, target_modules=LINEAR, use_dora=True), False),
    "pissa": (LoraConfig(r=4, target_modules=LINEAR, init_lora_weights="pissa"), False),
    "olora": (LoraConfig(r=4, target_modules=LINEAR, init_lora_weights="olora"), False),
    "gaussian-b-moved": (LoraConfig(r=4, target_modules=LINEAR), False),  # B nudged below
    "modules-to-save": (LoraConfig(r=4, target_modules=LINEAR, modules_to_save=["lm_head"]), False),
    "ia3": (IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"]), False),
    "prefix": (PrefixTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"), False),
}


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("name", CASES)
def test_identity_only_when_bit_exact(name):
    model, _ = load_model("tiny-llama", device="cpu")
    config, expected = CASES[name]
    policy = get_peft_model(model, config).eval()
    if name == "gaussian-b-moved":
        with torch.no_grad():
            next(p for n, p in policy.named_parameters() if ".lora_B." in n).add_(1e-3)
    assert adapter_is_identity(policy) is expected
    if expected:  # the claim itself: the same logits, bit for bit, adapter on and off
        ids = torch.tensor([[1, 400, 2000, 31, 7, 9000]])
        on = _logits(policy, ids)
        with policy.disable_adapter():
            off = _logits(policy, ids)
        assert torch.equal(on, off)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            on = _logits(policy, ids)
            with policy.disable_adapter():
                assert torch.equal(on, _logits(policy, ids))


def test_not_a_peft_model_or_a_ref_adapter_is_not_identity():
    model, _ = load_model("tiny-llama", device="cpu")
    assert adapter_is_identity(model) is False
    policy = get_peft_model(model, LoraConfig(r=4, target_modules=LINEAR))
    policy.add_adapter(REF_ADAPTER, LoraConfig(r=4, target_modules=LINEAR))  # TRL's stand-in reference
    assert adapter_is_identity(policy) is False
