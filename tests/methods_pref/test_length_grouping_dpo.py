"""`group_by_length` for the DPO family: transformers' LengthGroupedSampler cannot infer a
pair's length from DPO's columns, so the trainer gives it one (prompt + the longer response).
Each epoch must still use every pair exactly once, and the batches TRL's own collator builds
from the sampler's order must carry less padding than a uniform shuffle's. Evaluation keeps the
rows' order (the probes read the eval pass's per-pair log-probs in that order): a grouped run
evaluates and probes like an ungrouped one."""
import json

import pytest

from workbench import TrainConfig, train
from workbench.engine import _build, plan
from workbench.runs.run import Run


def _trainer(tmp_path, method, grouped):
    p = plan(TrainConfig(model="tiny-llama", dataset="preferences", method=method, peft="lora", max_steps=1,
                         max_rows=96, batch_size=4, eval_rows=0, sample_prompts=0,
                         method_args={"group_by_length": grouped}))
    run = Run.create(tmp_path / f"{method}-{grouped}", p.resolved())
    job, _ = _build(p, run)
    run.close()
    return job


def _padding_share(job) -> tuple[float, list[int]]:
    order = list(job._get_train_sampler(job.train_dataset))
    real = padded = 0
    for i in range(0, len(order), 4):
        batch = job.data_collator([job.train_dataset[j] for j in order[i:i + 4]])
        real += int(batch["attention_mask"].sum())
        padded += batch["attention_mask"].numel()
    return 1 - real / padded, order


@pytest.mark.parametrize("method", ["dpo", "ln-dpo"])
def test_grouped_pairs_pad_less_and_use_every_pair_once(tmp_path, method):
    shuffled, order = _padding_share(_trainer(tmp_path, method, False))
    grouped, grouped_order = _padding_share(_trainer(tmp_path, method, True))
    assert sorted(grouped_order) == sorted(order) == list(range(len(order)))
    assert grouped < 0.5 * shuffled, (grouped, shuffled)


def test_grouped_run_evaluates_in_row_order_with_the_probes(tmp_path):
    runs = {}
    for grouped in (False, True):
        cfg = TrainConfig(model="tiny-llama", dataset="preferences", method="dpo", peft="lora", max_steps=2,
                          max_rows=32, batch_size=4, eval_rows=8, eval_steps=2, sample_prompts=0,
                          run_dir=str(tmp_path / f"run-{grouped}"),
                          method_args={"group_by_length": grouped, "probe_kl_prompts": 0})
        res = train(cfg)
        recs = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
        runs[grouped] = [r for r in recs if r["kind"] == "eval"]
    # step 0: the same policy (the reference) and the same eval rows, so the same eval values
    start = {g: next(r for r in recs if r["step"] == 0) for g, recs in runs.items()}
    for key in ("eval_loss", "eval_logps/chosen", "eval_logps/rejected", "eval_ranking_accuracy",
                "eval_ref_ranking_accuracy", "eval_idealised_ranking_accuracy"):
        assert start[True][key] == pytest.approx(start[False][key], rel=1e-5), key
    assert [r["step"] for r in runs[True]] == [r["step"] for r in runs[False]] == [0, 2]
