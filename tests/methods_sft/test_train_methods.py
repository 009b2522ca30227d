"""Each SFT variant trains tiny-llama through the engine and its training signal improves.
tiny-llama is random-init, so full fine-tuning at lr 3e-3 is used (see conftest)."""
import pytest
from sft_helpers import falls, run_tiny, train_values


def test_dft_nll_falls_and_kl_is_tracked(tmp_path):
    # DFT's own loss −p·log p *rises* while p < 1/e (all of a random model's tokens), so the
    # signal that it learns is the NLL it logs with track_kl.
    r = run_tiny(tmp_path, "dft", method_args={"track_kl": True})
    assert falls(train_values(r, "nll"), by=0.1)
    kl = train_values(r, "kl_to_ref")
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and kl[-1] > 1e-3


def test_anchored_sft_keeps_kl_below_dft(tmp_path):
    common = dict(max_steps=10)
    dft = run_tiny(tmp_path, "dft", method_args={"track_kl": True}, **common)
    anchored = run_tiny(tmp_path, "anchored-sft", method_args={"kl_coef": 1.0}, **common)
    kl_dft, kl_anchored = train_values(dft, "kl_to_ref"), train_values(anchored, "kl_to_ref")
    assert kl_anchored[0] == pytest.approx(0.0, abs=1e-6)  # the reference is the starting model
    assert sum(kl_anchored[-3:]) < 0.7 * sum(kl_dft[-3:])
    assert falls(train_values(anchored, "nll"), by=0.05)


def test_anchored_sft_with_lora_uses_the_disabled_adapter_as_reference(tmp_path):
    r = run_tiny(tmp_path, "anchored-sft", "lora", max_steps=6, learning_rate=3e-2)
    kl = train_values(r, "kl_to_ref")
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and kl[-1] > 0  # B starts at zero: identical at step 1
    assert r.summary["trainable_share"] < 0.01


def test_masked_thought_loss_falls_and_logs_masked_fraction(tmp_path):
    r = run_tiny(tmp_path, "masked-thought", method_args={"mask_rate": 0.3})
    assert falls(train_values(r, "loss"), by=0.2)
    frac = train_values(r, "masked_fraction")
    assert len(frac) == len(train_values(r, "loss")) and 0.2 < sum(frac) / len(frac) < 0.4


def test_hft_trains_half_the_blocks_and_reselects(tmp_path):
    from workbench.methods.hft import parameter_groups
    from workbench.models import load_model

    r = run_tiny(tmp_path, "hft", method_args={"reselect_every": 4})
    assert falls(train_values(r, "loss"), by=0.05)
    assert sorted(set(train_values(r, "hft_stage"))) == [0.0, 1.0, 2.0]
    model, _ = load_model("tiny-llama", device="cpu")
    block_params = sum(p.numel() for b in parameter_groups(model) for cat in b for _, p in cat)
    assert 0.2 * block_params < r.summary["trainable_params"] < 0.8 * block_params


def test_loss_reweighting_loss_falls_with_uneven_weights(tmp_path):
    r = run_tiny(tmp_path, "loss-reweighting", method_args={"tau": 0.5})
    assert falls(train_values(r, "loss"), by=0.2)
    assert max(train_values(r, "weight_max")) > 1.0 > min(train_values(r, "weight_min"))


def test_s3ft_trains_on_the_models_own_answer_where_it_is_right(tmp_path):
    """A starting model that does answer: tiny-llama after a short SFT on "Answer: 7". Rows
    whose gold answer is what that model itself answers must be trained on its own
    response, the rest on gold; the logged own share must be the exact share of such rows
    among the training rows (not 0, which would be plain SFT). Then the paper's three tiers
    (own, paraphrase of gold, gold) on fixed responses."""
    import json

    from workbench import data
    from workbench.methods.s3ft import choose_tiers, generate_responses, paraphrase_prompts
    from workbench.models import load_model

    def write(name, rows):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(tmp_path / name)

    def ask(k):
        return [{"role": "user", "content": f"What is {k} + {7 - k}?"}]

    seven = write("seven.jsonl", [{"prompt": ask(k), "completion": [{"role": "assistant", "content": "Answer: 7"}]}
                                  for k in range(8)])
    warm = run_tiny(tmp_path, "sft", dataset=seven, max_rows=None, max_steps=30, max_length=48)
    start = str(tmp_path / "sft-full" / "final")
    model, tok = load_model(start, device="cpu")
    prompts = [ask(k) for k in range(20, 32)]
    responses = generate_responses(model, tok, prompts, max_new_tokens=6, batch_size=1)
    assert all("Answer:" in r for r in responses), responses  # the warm-up took
    # the first half: the gold answer is the one the model gives; the second half: one it never gives
    rows = [{"prompt": p, "answer": r.split("Answer:")[-1].strip(), "task": "custom", "solution": "gold.\nAnswer: x"}
            for p, r in zip(prompts[:6], responses)]
    rows += [{"prompt": p, "answer": "unreachable", "task": "custom", "solution": "Answer: unreachable"}
             for p in prompts[6:]]
    path = write("own.jsonl", rows)

    train_rows = list(data.load(path, format="verifiable", split="train", seed=0))
    expected = sum(r["answer"] != "unreachable" for r in train_rows) / len(train_rows)
    assert 0 < expected < 1 and warm.status == "completed"
    # tier 2 (paraphrase of gold) for the wrong rows: right only if it still ends in the gold answer
    wrong = [row for row in train_rows if row["answer"] == "unreachable"]
    paraphrases = generate_responses(model, tok, paraphrase_prompts(wrong), max_new_tokens=6, batch_size=1)
    expected_para = sum(t.split("Answer:")[-1].strip() == "unreachable" for t in paraphrases) / len(train_rows)
    r = run_tiny(tmp_path, "s3ft", model=start, dataset=path, max_rows=None, max_length=64, max_steps=6,
                 seed=0, method_args={"max_new_tokens": 6, "generation_batch_size": 1})
    assert set(train_values(r, "s3ft_own_share")) == {round(expected, 4)}
    assert set(train_values(r, "s3ft_paraphrase_share")) == {round(expected_para, 4)}

    # the three tiers on fixed responses: own if right, else a right paraphrase, else gold
    row = {"prompt": ask(2), "answer": "7", "task": "arithmetic", "solution": "2 + 5 = 7.\nAnswer: 7"}
    out, tiers = choose_tiers([row] * 3, ["Answer: 7", "Answer: 6", "Answer: 6"],
                              [None, "Two and five make seven.\nAnswer: 7", "Answer: 8"])
    assert tiers == ["own", "paraphrase", "gold"]
    assert [o["completion"][0]["content"] for o in out] == [
        "Answer: 7", "Two and five make seven.\nAnswer: 7", "2 + 5 = 7.\nAnswer: 7"]


def test_anchored_sft_bad_knob_fails_before_the_run_dir(tmp_path):
    from workbench import TrainConfig, train
    from workbench.errors import WorkbenchError

    run = tmp_path / "run"
    with pytest.raises(WorkbenchError, match="kl_coef must be >= 0"):
        train(TrainConfig(model="tiny-llama", method="anchored-sft", max_steps=1, run_dir=str(run),
                          method_args={"kl_coef": -1}))
    assert not run.exists()
