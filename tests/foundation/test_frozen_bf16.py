"""A LoRA run's frozen base weights, cast to bf16 once (workbench/training/frozen_bf16.py):
the same loss and gradients bit for bit under autocast, the fp32 weights outside it."""
import copy

import torch
from peft import LoraConfig, get_peft_model

from workbench import TrainConfig, train
from workbench.training.frozen_bf16 import FrozenBf16, frozen_linears, use_frozen_bf16

FAST = dict(model="tiny-llama", dataset="instructions", max_length=64, batch_size=4, sample_prompts=0)


def _lora(tiny, **kw):
    torch.manual_seed(0)
    return get_peft_model(copy.deepcopy(tiny[0]), LoraConfig(r=4, target_modules="all-linear", **kw)).train()


def _loss_and_grads(model, ids, autocast=True):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    return loss.detach(), grads


def test_bf16_copies_give_the_same_loss_and_grads_bit_for_bit(tiny):
    ids = torch.randint(0, tiny[0].config.vocab_size, (3, 24))
    plain = _lora(tiny)
    fast = copy.deepcopy(plain)
    weights = [m.weight for m in frozen_linears(fast)]
    swap = FrozenBf16(frozen_linears(fast))
    assert len(swap.layers) == len(frozen_linears(plain)) > 0
    for autocast in (True, False):  # outside autocast: the fp32 weights, as before
        loss_a, grads_a = _loss_and_grads(plain, ids, autocast)
        loss_b, grads_b = _loss_and_grads(fast, ids, autocast)
        assert torch.equal(loss_a, loss_b)
        assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert all(m.weight is w and w.dtype == torch.float32 for m, w in zip(frozen_linears(fast), weights))
    swap.release()
    assert not any("forward" in vars(m) for m in frozen_linears(fast))


def test_only_frozen_linears_under_plain_lora(tiny):
    model = _lora(tiny)
    bases = frozen_linears(model)
    names = {n for n, m in model.named_modules() if any(m is b for b in bases)}
    assert names and all(n.endswith("base_layer") for n in names)  # never LoRA's own A and B
    trainer = type("T", (), {"model": _lora(tiny, use_dora=True)})()
    assert use_frozen_bf16(trainer, bf16=True) is None  # DoRA reads the base weight outside the forward
    assert use_frozen_bf16(type("T", (), {"model": model})(), bf16=False) is None


def test_the_engine_installs_it_for_bf16_lora_only(build_job):
    job = build_job(**FAST, eval_rows=0, max_steps=1, peft="lora", precision="bf16")
    assert isinstance(job.frozen_bf16, FrozenBf16) and job.frozen_bf16.layers
    for other in (dict(peft="lora", precision="fp32"), dict(peft="full", precision="bf16")):
        assert build_job(**FAST, eval_rows=0, max_steps=1, **other).frozen_bf16 is None


def test_a_bf16_lora_run_trains_the_same_with_and_without(tmp_path, monkeypatch):
    def run(flag):
        monkeypatch.setenv("WORKBENCH_FROZEN_BF16", flag)
        losses = []
        cfg = TrainConfig(**FAST, eval_rows=4, peft="lora", max_steps=3, precision="bf16", eval_steps=2,
                          run_dir=str(tmp_path / f"run-{flag}"))
        train(cfg, listeners=[lambda r: r.kind.value in ("train", "eval") and losses.append(r.values.get("loss"))])
        return losses

    with_copies, without = run("1"), run("0")
    assert len(with_copies) >= 3 and with_copies == without
