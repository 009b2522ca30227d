"""GRPO and RLOO through TRL on tiny-llama with the workbench reward functions."""
import pytest

from workbench import TrainConfig, train
from workbench.errors import WorkbenchError
from workbench.methods.grpo import eval_batch_size
from workbench.methods.trainers.mirror_sampling import MirrorSampling
from workbench.models import decoding, decoding_mirror

FAST = dict(model="tiny-llama", dataset="arithmetic", batch_size=4, eval_rows=0, sample_prompts=0,
            learning_rate=1e-3)


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_two_steps_with_checker_and_length_rewards(tmp_path, method):
    cfg = TrainConfig(**FAST, method=method, max_steps=2, run_dir=str(tmp_path / method),
                      method_args={"num_generations": 2, "max_completion_length": 8,
                                   "rewards": {"correct": 1.0, "length": {"weight": 0.5, "max_words": 3}}})
    result = train(cfg)
    assert result.status == "completed" and result.summary["steps"] == 2
    logs = [r for r in result.records if r.kind == "train" and r.get("loss") is not None]
    assert len(logs) == 2
    # TRL logs each reward function under its name: ours are named after the spec.
    assert all(r.get("rewards/correct/mean") is not None and r.get("rewards/length/mean") is not None for r in logs)
    assert all(0 <= r.get("rewards/length/mean") <= 1 for r in logs)


def test_group_must_fit_the_batch(tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(**{**FAST, "batch_size": 3}, method="grpo", max_steps=1, run_dir=str(run),
                      method_args={"num_generations": 2})
    with pytest.raises(WorkbenchError, match=r"batch_size × grad_accum \(3 × 1\) must be a multiple"):
        train(cfg)
    assert not run.exists()


@pytest.mark.parametrize("knobs, message", [
    ({"num_generations": 1}, "num_generations must be at least 2"),
    ({"loss_type": "ppo"}, "unknown method.loss_type 'ppo'"),
    ({"rewards": {"length": {"max": 1}}}, "unknown knob 'max'"),
])
def test_bad_knobs(tmp_path, knobs, message):
    run = tmp_path / "run"
    with pytest.raises(WorkbenchError, match=message):
        train(TrainConfig(**FAST, method="grpo", max_steps=1, run_dir=str(run), method_args=knobs))
    assert not run.exists()


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_evaluation_decodes_all_held_out_prompts_in_one_call_from_the_mirror(tmp_path, build_job, monkeypatch, method):
    """A held-out prompt's group of 4 per generate call made evaluation 43% of a default run. On
    the CPU an eval batch now holds ~32 rows of whole groups of `num_generations_eval` (default 2):
    the 16 held-out prompts of a default run are one call. The run samples taken at the
    evaluation decode from the sampling mirror: the run makes one decoding copy, not two."""
    for batch, gens, rows in ((4, 2, 32), (4, 4, 32), (3, 3, 30), (48, 4, 48), (5, 3, 30)):
        job = build_job(**{**FAST, "eval_rows": 4, "batch_size": batch}, method=method, max_steps=1,
                        method_args={"num_generations": 4 if batch % 4 == 0 else batch, "num_generations_eval": gens})
        assert (job.args.per_device_eval_batch_size, job.args.num_generations_eval) == (rows, gens)
    assert [eval_batch_size(4, g, "cuda") for g in (2, 3, 4, 8)] == [4, 6, 4, 8]  # about the training batch
    with pytest.raises(WorkbenchError, match=r"method.num_generations_eval must be >= 1, got 0"):
        build_job(**FAST, method=method, max_steps=1, method_args={"num_generations_eval": 0})

    calls, copies = [], []
    turn, copy = MirrorSampling._generate_single_turn, decoding.decoding_copy

    def counted_turn(self, prompt_ids, *args, **kwargs):
        calls.append(("train" if self.model.training else "eval", len(prompt_ids)))
        return turn(self, prompt_ids, *args, **kwargs)

    def counted_copy(*args, **kwargs):
        copies.append(kwargs)
        return copy(*args, **kwargs)

    monkeypatch.setattr(MirrorSampling, "_generate_single_turn", counted_turn)
    for module in (decoding, decoding_mirror):
        monkeypatch.setattr(module, "decoding_copy", counted_copy)
    cfg = TrainConfig(**{**FAST, "eval_rows": 16, "sample_prompts": 1}, method=method, max_steps=2, eval_steps=2,
                      run_dir=str(tmp_path / "run"), method_args={"num_generations": 2, "max_completion_length": 8})
    result = train(cfg)
    evals = [r for r in result.records if r.kind == "eval"]
    assert result.status == "completed" and evals and all(r.get("eval_reward") is not None for r in evals)
    assert [c for c in calls if c[0] == "eval"] == [("eval", 32)] * len(evals)
    assert any(r.kind == "sample" and r.step == 2 for r in result.records)
    assert len(copies) == 1  # the mirror; the evaluation's samples decoded from it
