"""SmolLM2-135M (llama architecture, the real built-in model): a LoRA run merged with
another and exported as safetensors (f32) and GGUF (f16), each read back with plain
transformers and compared with the run's logits at the stated tolerance. (GGUF f32 is the
same tensor mapping written at full precision: tests/merging/test_cli_and_export.py checks
it to 1e-4 on a llama run.) Slow: two real training runs and two 135M-parameter exports.

The merge is a linear one (1.5 s): what is exported is a merged run either way, and each
method's maths is checked on tiny runs (tests/merging/test_merge_runs.py, TIES against PEFT's
`ties` of the updates). A TIES merge here took 28 s of the suite's CPU on 2 cores, inside PEFT's
add_weighted_adapter (magnitude pruning's topk 11 s, the SVD back to LoRA factors 14 s)."""
from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol_runs(tmp_path_factory):
    from workbench import TrainConfig, train

    root = tmp_path_factory.mktemp("smol")
    out = {}
    for name, data in (("a", "instructions"), ("b", "tasks")):
        cfg = TrainConfig(model="smollm2-135m-instruct", dataset=data, peft="lora", max_steps=2, batch_size=2,
                          max_length=64, max_rows=8, eval_rows=0, sample_prompts=0, learning_rate=1e-3,
                          run_dir=str(root / name))
        out[name] = str(train(cfg).run_dir)
    return out


def _logits(model, tok):
    ids = torch.tensor([tok("The capital of France is Paris. 12 + 30 = 42")["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


@pytest.fixture(scope="module")
def merged_run(smol_runs, tmp_path_factory):
    """One merge for both exports (each export compares against its logits)."""
    from workbench import merge

    return merge([smol_runs["a"], smol_runs["b"]], "linear", weights=[0.5, 0.5],
                 out=tmp_path_factory.mktemp("merged") / "merged").run_dir


@pytest.mark.parametrize("fmt,dtype,tol", [("safetensors", "f32", 5e-4), ("gguf", "f16", 5e-2)])
def test_smollm2_merge_exports_round_trip(merged_run, tmp_path, fmt, dtype, tol):
    from workbench.merging.export import export_run
    from workbench.runs import load_run_model

    model, tok, _ = load_run_model(merged_run, device="cpu")
    expected = _logits(model.eval(), tok)
    result = export_run(merged_run, tmp_path / "export", fmt, dtype=dtype)
    got = _logits(result.reloaded, tok)
    diff = (got - expected).abs().max().item()
    print(f"SmolLM2 {fmt} {dtype}: max |Δlogit| {diff:.2e} (logit scale {expected.abs().max().item():.1f})")
    assert diff <= tol
    assert json.loads((tmp_path / "export" / "export.json").read_text())["max_abs_logit_diff"] <= tol
