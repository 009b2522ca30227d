"""The run's `seed` decides the adapter's initial weights (LoRA's A is drawn at random), not
whatever the process drew before: in a notebook kernel that has run other cells, a config
starts from the same weights as in a fresh `workbench train`; another seed starts elsewhere.
TRL's trainers seed before they wrap the model; the on-policy coordinator wraps it itself, so
the engine seeds first."""
import pytest
import torch


def _initial_lora_a(build_job, seed, method, dataset):
    job = build_job(model="tiny-llama", dataset=dataset, method=method, peft="lora", max_steps=2, max_rows=8,
                    eval_rows=0, sample_prompts=0, seed=seed)
    return {n: w.detach().clone() for n, w in job.model.named_parameters() if "lora_A" in n}


@pytest.mark.parametrize("method,dataset", [("sft", "instructions"), ("onpolicy-dpo", "arithmetic")])
def test_seed_not_process_history_decides_the_initial_adapter(build_job, method, dataset):
    first = _initial_lora_a(build_job, 0, method, dataset)
    torch.rand(1000)  # cells run before, drawing from torch's global generator
    again = _initial_lora_a(build_job, 0, method, dataset)
    other = _initial_lora_a(build_job, 1, method, dataset)
    assert first and first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not any(torch.equal(first[n], other[n]) for n in first)
