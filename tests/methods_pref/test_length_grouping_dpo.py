"""`group_by_length` in a DPO run with evaluation: transformers would length-group the eval
set too (and cannot infer DPO lengths: such a run crashed). Evaluation keeps the rows' order, as
the probes read the eval pass's per-pair log-probs in that order, so a grouped run evaluates and
probes like an ungrouped one. The padding itself: tests/methods_sft/test_length_grouping.py."""
import pytest

from workbench import TrainConfig, train


def test_grouped_run_evaluates_in_row_order_with_the_probes(tmp_path):
    runs = {}
    for grouped in (False, True):
        cfg = TrainConfig(model="tiny-llama", dataset="preferences", method="dpo", peft="lora", max_steps=2,
                          max_rows=32, batch_size=4, eval_rows=8, eval_steps=2, sample_prompts=0,
                          run_dir=str(tmp_path / f"run-{grouped}"),
                          method_args={"group_by_length": grouped, "probe_kl_prompts": 0})
        runs[grouped] = [r for r in train(cfg).records if r.kind == "eval"]
    # step 0: the same policy (the reference) and the same eval rows, so the same eval values
    start = {g: next(r.values for r in recs if r.step == 0) for g, recs in runs.items()}
    for key in ("eval_loss", "eval_logps/chosen", "eval_logps/rejected", "eval_ranking_accuracy",
                "eval_ref_ranking_accuracy", "eval_idealised_ranking_accuracy"):
        assert start[True][key] == pytest.approx(start[False][key], rel=1e-5), key
    assert [r.step for r in runs[True]] == [r.step for r in runs[False]] == [0, 2]
