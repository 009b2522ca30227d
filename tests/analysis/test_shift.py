"""Token-distribution shift on hand-built pairs where the right answer is known."""
import numpy as np
import pytest
import torch

from workbench.analysis import token_shift
from workbench.analysis.prompts import URIAL_SYSTEM, render
from workbench.errors import WorkbenchError

PROMPTS = ["What is the capital of France?", "Give me two tips for sleeping better.",
           [{"role": "user", "content": "Say hello."}]]


def test_identical_weights_are_all_unshifted_with_zero_kl(tiny):
    r = token_shift(tiny, tiny, PROMPTS, max_new_tokens=12, precision="fp32", progress=False)
    assert r.n_tokens == 3 * 12  # the random tiny model never emits EOS this early
    assert r.fractions == {"unshifted": 1.0, "marginal": 0.0, "shifted": 0.0}
    assert (r.records["base_rank"] == 1).all()
    # tuned logits come from decoding (KV cache), base from one full forward: equal up to rounding
    assert r.records["kl"].abs().max() < 1e-5
    np.testing.assert_allclose(r.records["base_prob"], r.records["tuned_prob"], rtol=1e-4)


def test_identical_weights_rescored_kl_is_exactly_zero(tiny):
    r = token_shift(tiny, tiny, PROMPTS[:2], max_new_tokens=6, precision="fp32",
                    rescore_tuned=True, progress=False)
    assert (r.records["kl"] == 0).all()
    assert r.fractions["unshifted"] == 1.0


def _reference_ranks(base_model, prompt_ids, out_ids):
    """Naive per-position reference: forward each prefix alone, rank by sorting."""
    ranks = []
    for t in range(len(out_ids)):
        ids = torch.tensor([prompt_ids + out_ids[:t]])
        with torch.no_grad():
            logits = base_model(ids).logits[0, -1].double()
        order = torch.argsort(logits, descending=True).tolist()
        ranks.append(order.index(out_ids[t]) + 1)
    return ranks


@pytest.mark.parametrize("target_rank,category", [(1, "unshifted"), (2, "marginal"),
                                                  (3, "marginal"), (4, "shifted"), (25, "shifted")])
def test_forced_token_gets_its_base_rank_and_category(tiny, forced, target_rank, category):
    model, tok = tiny
    prompt = "What is the capital of France?"
    p_ids = tok(tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                       add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        first = model(torch.tensor([p_ids])).logits[0, -1]
    token = int(torch.argsort(first, descending=True)[target_rank - 1])
    tuned = forced(token)

    r = token_shift(tiny, tuned, [prompt], max_new_tokens=5, precision="fp32", progress=False)
    rec = r.records
    assert (rec["token_id"] == token).all()  # the edited logit wins everywhere
    assert rec.loc[0, "base_rank"] == target_rank
    assert rec.loc[0, "category"] == category
    assert rec["tuned_prob"].min() > 0.999
    # every position matches the naive per-prefix computation
    assert rec["base_rank"].tolist() == _reference_ranks(model, p_ids, [token] * 5)
    # KL(tuned‖base) with tuned ≈ one-hot on the token is ≈ −log p_base(token)
    np.testing.assert_allclose(rec["kl"], -np.log(rec["base_prob"]), rtol=1e-3)
    # the top-k lists hold the base's own favourites, best first
    top = rec.loc[0, "base_topk"]
    assert len(top) == 5 and top[0][1] >= top[-1][1]
    if target_rank <= 5:
        assert top[target_rank - 1][0] == rec.loc[0, "token"]


def test_categories_and_top_shifted_counts(tiny, forced):
    _, tok = tiny
    token = tok.convert_tokens_to_ids("Sure")
    r = token_shift(tiny, forced(token), PROMPTS, max_new_tokens=4, precision="fp32", progress=False)
    n_shifted = int((r.records["base_rank"] > 3).sum())
    assert r.fractions["shifted"] == pytest.approx(n_shifted / r.n_tokens)
    assert sum(r.fractions.values()) == pytest.approx(1.0)
    top = r.top_shifted(5)
    assert top.loc[0, "token"] == "Sure" and top.loc[0, "count"] == n_shifted
    prof = r.by_position()
    assert list(prof["position"]) == [0, 1, 2, 3] and (prof["n"] == 3).all()


def test_different_tokenizers_raise_one_clear_error(tiny):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "hello": 2, "world": 3}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    other_tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>")
    other = LlamaForCausalLM(LlamaConfig(vocab_size=4, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2))
    with pytest.raises(WorkbenchError, match="different tokenizers"):
        token_shift(tiny, (other, other_tok), ["hello"], max_new_tokens=2, progress=False)


def test_run_dir_with_adapter_shares_weights_and_matches_separate_models(tiny, lora_run):
    from peft import PeftModel

    from workbench.models import load_model

    r = token_shift("tiny-llama", str(lora_run), PROMPTS, max_new_tokens=6, precision="fp32",
                    progress=False)
    assert r.tuned_name == str(lora_run)
    assert r.records["kl"].mean() > 1e-4  # the random adapter really changes the model

    base = load_model("tiny-llama")
    tuned_model = PeftModel.from_pretrained(load_model("tiny-llama")[0], str(lora_run / "final"))
    ref = token_shift(base, (tuned_model, base[1]), PROMPTS, max_new_tokens=6, precision="fp32",
                      progress=False)
    assert r.records["token_id"].tolist() == ref.records["token_id"].tolist()
    assert r.records["base_rank"].tolist() == ref.records["base_rank"].tolist()
    np.testing.assert_allclose(r.records["kl"], ref.records["kl"], atol=1e-5)


def test_urial_prompt_reaches_tuned_side_only(tiny):
    _, tok = tiny
    msgs = [{"role": "user", "content": "Why is grass green?"}]
    assert URIAL_SYSTEM in render(tok, msgs, urial=True)
    assert URIAL_SYSTEM not in render(tok, msgs, urial=False)
    r = token_shift("tiny-llama", "urial:tiny-llama", ["Why is grass green?"], max_new_tokens=4,
                    precision="fp32", progress=False)
    # same weights, different context: the distributions differ (plain-vs-plain gives KL 0)
    assert r.tuned_name == "urial:tiny-llama" and r.records["kl"].mean() > 1e-6


@pytest.mark.parametrize("knob", [{"max_new_tokens": 0}, {"batch_size": 0}, {"top_k": 0}, {"max_prompts": 0},
                                  {"batch_size": 2.5}])
def test_bad_knobs_are_one_clear_error_before_loading(knob):
    # the CLI checked these; from Python (the notebooks) they were a ValueError from generate or range()
    with pytest.raises(WorkbenchError, match=f"token_shift: {next(iter(knob))} must be an integer >= 1"):
        token_shift("no-such-model", "no-such-model", ["hi"], progress=False, **knob)


def test_bad_prompts_are_one_clear_error(tiny):
    with pytest.raises(WorkbenchError, match="prompt 1"):
        token_shift(tiny, tiny, ["ok", 42], max_new_tokens=2, progress=False)
    with pytest.raises(WorkbenchError, match="no prompts"):
        token_shift(tiny, tiny, [], max_new_tokens=2, progress=False)


def test_html_and_json_views(tiny, forced):
    token = tiny[1].convert_tokens_to_ids("Sure")
    r = token_shift(tiny, forced(token), PROMPTS[:2], max_new_tokens=3, precision="fp32",
                    progress=False)
    html = r.to_html()
    assert html.count('class="tds-tok tds-') == r.n_tokens
    assert "base rank" in html and "plotly" in html.lower()
    stats = r.to_json()
    assert {"unshifted", "marginal", "shifted", "top_shifted", "n_tokens", "tokens_per_s"} <= set(stats)
    assert r.position_figure().data and r.top_shifted_figure().data


def test_urial_plain_format_stops_at_closing_fence(tiny, forced):
    """A model without a chat template gets URIAL's `# Query:` / `# Answer:` text format
    and its answer ends at the closing ``` (not at EOS)."""
    import copy

    from workbench.analysis.resolve import Side

    model, tok = tiny
    plain = copy.deepcopy(tok)
    plain.chat_template = None
    fence = plain("```", add_special_tokens=False)["input_ids"][0]
    text = render(plain, [{"role": "user", "content": "Why?"}], urial=True)
    assert text.startswith("# Instruction") and text.endswith("# Answer:\n```\n")
    tuned = Side(forced(fence)[0], plain, "urial:plain", urial=True)
    r = token_shift(Side(model, plain, "plain"), tuned, ["Why?"], max_new_tokens=6,
                    precision="fp32", progress=False)
    assert r.n_tokens == 1 and r.records.loc[0, "token_id"] == fence


def test_the_precision_used_is_recorded_in_json_and_report(tiny):
    from workbench.analysis.html import shift_report
    from workbench.models.device import cpu_supports_bf16

    r = token_shift(tiny, tiny, PROMPTS[:1], max_new_tokens=2, precision="fp32", progress=False)
    assert r.settings["precision"] == "fp32" and r.settings["precision_resolved"] == "fp32"
    auto = token_shift(tiny, tiny, PROMPTS[:1], max_new_tokens=2, precision="auto", progress=False)
    assert auto.settings["precision_resolved"] == ("bf16" if cpu_supports_bf16() else "fp32")
    assert f"auto → {auto.settings['precision_resolved']}" in shift_report(auto, plots=False)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_token_stats_chunked_match_a_hand_computation(chunk):
    """Rank, probabilities, KL(tuned‖base) and the base's top-k, computed `chunk` positions at a
    time over B×T positions, equal the textbook formulas on the whole tensor."""
    from workbench.analysis.scoring import token_stats

    g = torch.Generator().manual_seed(0)
    lb, lt = torch.randn(2, 5, 11, generator=g) * 2, torch.randn(2, 5, 11, generator=g) * 2
    tokens = torch.randint(0, 11, (2, 5), generator=g)
    s = token_stats(lb, lt, tokens, top_k=3, chunk=chunk)
    pb, pt = lb.softmax(-1), lt.softmax(-1)
    for i in range(2):
        for t in range(5):
            k = int(tokens[i, t])
            order = torch.argsort(lb[i, t], descending=True).tolist()
            assert s["base_rank"][i, t] == order.index(k) + 1
            assert torch.isclose(s["base_prob"][i, t], pb[i, t, k])
            assert torch.isclose(s["tuned_prob"][i, t], pt[i, t, k])
            kl = float((pt[i, t] * (pt[i, t] / pb[i, t]).log()).sum())
            assert abs(float(s["kl"][i, t]) - kl) < 1e-5
            assert s["topk_ids"][i, t].tolist() == order[:3]
            torch.testing.assert_close(s["topk_probs"][i, t], pb[i, t, order[:3]])
    empty = token_stats(lb[:0], lt[:0], tokens[:0], chunk=chunk)
    assert empty["kl"].shape == (0, 5) and empty["topk_ids"].shape == (0, 5, 5)
    # a top_k past the vocabulary (11 here) keeps the whole ranking (it was a RuntimeError from topk)
    whole = token_stats(lb, lt, tokens, top_k=50, chunk=chunk)
    assert whole["topk_ids"].shape == (2, 5, 11) and whole["topk_ids"][0, 0].tolist() == torch.argsort(
        lb[0, 0], descending=True).tolist()
