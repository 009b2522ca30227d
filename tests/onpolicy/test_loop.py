"""The on-policy rounds end to end on tiny-llama: the CLI runs 2 rounds of on-policy DPO,
every round lands in the run store; AFT and KTO objectives, stop/resume, bad knobs."""
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from workbench import TrainConfig, train
from workbench.errors import WorkbenchError

REWARD = "def chars(prompts, completions, **kw):\n    return [len(c) / 100 for c in completions]\n"
# Random tiny-llama never answers right, so the checker alone would tie every group: add a
# user reward on length (a real Python callable from a file) so pairs get built.
FAST = dict(model="tiny-llama", dataset="arithmetic", batch_size=2, max_length=128, eval_rows=3,
            sample_prompts=1, learning_rate=1e-3)
KNOBS = dict(k=3, prompts_per_round=3, max_new_tokens=8, eval_max_new_tokens=8, progress=False)


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _reward_file(tmp_path) -> str:
    f = tmp_path / "chars.py"
    f.write_text(REWARD)
    return f"{f}:chars"


def test_cli_runs_two_rounds_of_onpolicy_dpo(tmp_path):
    run = tmp_path / "run"
    rewards = json.dumps({"correct": 1.0, "python": {"function": _reward_file(tmp_path), "weight": 1.0}})
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli.main", "train", "--method", "onpolicy-dpo", "--model", "tiny-llama",
         "--dataset", "arithmetic", "--max-steps", "2", "--batch-size", "2", "--max-length", "128",
         "--eval-rows", "3", "--sample-prompts", "1", "--run-dir", str(run),
         "--set", "method.k=3", "--set", "method.prompts_per_round=3", "--set", "method.max_new_tokens=8",
         "--set", "method.eval_max_new_tokens=8", "--set", "method.progress=false",
         "--set", f"method.rewards={rewards}" ],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = _metrics(run)
    rounds = [r for r in recs if r["kind"] == "event" and r.get("event") == "round"]
    evals = [r for r in recs if r["kind"] == "eval"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert [r["round"] for r in evals] == [0, 1, 2]
    for r in rounds:
        assert r["pairs"] >= 1 and r["prompts"] == 3 and r["samples"] == 9 and r["train_steps"] == 1
        assert r["reward_std"] > 0 and 0 <= r["sample_accuracy"] <= 1 and r["sample_tokens_per_s"] > 0
        assert set(r) >= {"reward_mean", "length_mean", "prompts_kept", "reward/correct", "reward/python"}
    for r in evals:
        assert r["accuracy"] is not None and r["eval_rows"] == 3 and r["eval_length_mean"] > 0
    train_steps = [r["step"] for r in recs if r["kind"] == "train"]
    assert train_steps == [1, 2]  # one continuous step axis across the rounds' trainers
    assert [r["round"] for r in recs if r["kind"] == "train"] == [1, 2]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert (run / "final" / "adapter_model.safetensors").is_file()
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {s.get("round") for s in samples if "reward" in s} == {0, 1, 2}


def test_aft_and_kto_objectives_get_their_own_data_shape(tmp_path):
    fn = _reward_file(tmp_path)
    for method, extra in (("onpolicy-aft", {}), ("onpolicy", {"objective": "kto"})):
        cfg = TrainConfig(**FAST, method=method, peft="full", max_steps=1, run_dir=str(tmp_path / method),
                          method_args={**KNOBS, "rounds": 1, "rewards": {"python": {"function": fn}}, **extra})
        result = train(cfg)
        assert result.status == "completed", method
        (rnd,) = [r for r in result.records if r.kind == "event" and r.get("event") == "round"]
        assert rnd.get("pairs") >= 2 and rnd.get("train_steps") == 1
        assert (Path(result.run_dir) / "final" / "model.safetensors").is_file()


def test_stop_after_a_round_then_resume_runs_the_rest(tmp_path):
    stop = threading.Event()
    fn = _reward_file(tmp_path)
    cfg = TrainConfig(**FAST, method="onpolicy-dpo", max_steps=2, run_dir=str(tmp_path / "run"),
                      method_args={**KNOBS, "rewards": {"python": {"function": fn}}})

    def listener(rec):
        if rec.kind == "eval" and rec.get("round") == 1:
            stop.set()

    first = train(cfg, listeners=[listener], stop=stop)
    assert first.status == "stopped"
    assert [r.get("round") for r in first.records if r.kind == "eval"] == [0, 1]
    second = train(cfg, resume=True)
    assert second.status == "completed" and second.summary["steps"] == 2
    recs = _metrics(first.run_dir)
    assert [r["round"] for r in recs if r["kind"] == "eval"] == [0, 1, 2]
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2]


@pytest.mark.parametrize("knobs, message", [
    ({"objective": "sft"}, "needs a preference objective"),
    ({"objective": "dpo", "builder": "ranked"}, "builder 'ranked' makes 'ranked' rows but objective 'dpo'"),
    ({"objective_args": {"betta": 0.1}}, "method.objective_args \\(dpo\\) key 'betta'"),
    ({"k": 1}, "k must be at least 2"),
    ({"rewards": "corect"}, "unknown reward 'corect'"),
    ({"temperature": 0}, "temperature must be > 0"),
])
def test_bad_knobs_fail_before_the_run_dir(tmp_path, knobs, message):
    run = tmp_path / "run"
    with pytest.raises(WorkbenchError, match=message):
        train(TrainConfig(**FAST, method="onpolicy", max_steps=2, run_dir=str(run), method_args=knobs))
    assert not run.exists()


def test_more_rounds_than_steps_fails_before_the_run_dir(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(WorkbenchError, match="split across rounds"):
        train(TrainConfig(**FAST, method="onpolicy", max_steps=1, run_dir=str(run), method_args={"rounds": 3}))
    assert not run.exists()


def test_rounds_sample_and_evaluate_from_one_decoding_copy_per_step(tmp_path, monkeypatch):
    """Held-out evaluation and the next round's sampling run at the same step: both decode from one
    merged copy of the policy (workbench.models.decoding.eval_decoder), never the training model."""
    import workbench.onpolicy.loop as loop

    seen = []

    def recording(fn, kind):
        def call(model, *a, **k):
            seen.append((kind, model))
            return fn(model, *a, **k)
        return call
    monkeypatch.setattr(loop, "sample", recording(loop.sample, "sample"))
    monkeypatch.setattr(loop, "evaluate", recording(loop.evaluate, "evaluate"))
    cfg = TrainConfig(**FAST, method="onpolicy-dpo", peft="lora", max_steps=2, run_dir=str(tmp_path / "run"),
                      method_args={**KNOBS, "rounds": 2, "rewards": {"python": {"function": _reward_file(tmp_path)}}})
    assert train(cfg).status == "completed"
    assert [k for k, _ in seen] == ["evaluate", "sample", "evaluate", "sample", "evaluate"]
    assert seen[0][1] is seen[1][1] and seen[2][1] is seen[3][1]  # one copy per step
    assert seen[1][1] is not seen[3][1]  # a new one after the round trained
    for _, model in seen:
        assert not any("lora" in name for name, _ in model.named_modules())  # merged, not the PEFT policy


def test_a_nan_round_leaves_no_checkpoint_or_weights(tmp_path):
    """The round whose update took the NaN was checkpointed and evaluated before the loop ended,
    and its NaN weights saved as final/: a resume or any probe started from them."""
    fn = _reward_file(tmp_path)
    cfg = TrainConfig(**{**FAST, "learning_rate": 1e30}, method="onpolicy-dpo", max_steps=3, save_steps=1,
                      run_dir=str(tmp_path / "run"), method_args={**KNOBS, "rewards": {"python": {"function": fn}}})
    result = train(cfg)
    assert result.status == "failed" and "weights were no longer finite" in result.summary["reason"]
    run = Path(result.run_dir)
    assert not (run / "final").exists() and not list((run / "checkpoints").glob("checkpoint-*"))
    nan_round = max(r["round"] for r in _metrics(run) if r["kind"] == "event" and "round" in r)
    assert all(r["round"] < nan_round for r in _metrics(run) if r["kind"] == "eval")  # not evaluated either
