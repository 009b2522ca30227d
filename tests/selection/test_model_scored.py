"""perplexity and IFD: batching must not change a row's loss; IFD is the reference's perplexity
ratio (checked by hand), drops IFD ≥ 1, and prefers responses the instruction does not explain."""
import numpy as np
import pytest

from workbench.selection import select
from workbench.selection.scoring import load_scorer, response_losses

PAIRS = [("Repeat after me: the cat sat on the mat.", "the cat sat on the mat."),
         ("Name a colour.", "Blue."),
         ("Write a haiku about rain.", "Soft rain on the roof / the garden drinks in silence / puddles hold the sky"),
         ("Hi", "Hello! How can I help you today? I can answer questions, write text and more."),
         ("Translate 'merci' to English.", "thank you")]


def test_batched_length_sorted_losses_equal_one_by_one():
    model, tok = load_scorer("tiny-llama")
    ins, res = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    batched = response_losses(model, tok, ins, res, batch_size=4, progress=False)
    single = response_losses(model, tok, ins, res, batch_size=1, progress=False)
    np.testing.assert_allclose(batched, single, rtol=1e-4)
    without = response_losses(model, tok, [None] * 5, res, batch_size=4, progress=False)
    assert np.all(np.isfinite(batched)) and not np.allclose(batched, without)


def _reference_ppl(model, tok, instruction, response):
    """PPL of the response tokens by hand, as the Cherry LLM / Superfiltering reference does it:
    a plain transformers forward with labels = -100 on the prefix, then exp(outputs.loss).
    The prefix is the chat template of a user turn holding the instruction ("" = direct)."""
    import torch

    prefix = tok.apply_chat_template([{"role": "user", "content": instruction}], add_generation_prompt=True,
                                     tokenize=False)
    pre = tok(prefix, add_special_tokens=False)["input_ids"]
    res = tok(response, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([pre + res])
    labels = ids.clone()
    labels[0, :len(pre)] = -100
    with torch.no_grad():
        return float(torch.exp(model(input_ids=ids, labels=labels).loss))


def test_ifd_is_the_reference_perplexity_ratio_computed_by_hand(make_pool):
    model, tok = load_scorer("tiny-llama")
    assert tok.chat_template  # the by-hand prefix below relies on it
    sel = select(make_pool(PAIRS), "ifd", k=2, scorer="tiny-llama", progress=False, max_ifd=1e9)
    expect = np.array([_reference_ppl(model, tok, i, r) / _reference_ppl(model, tok, "", r) for i, r in PAIRS])
    np.testing.assert_allclose(sel.scores, expect, rtol=1e-4)
    assert sel.indices == list(np.argsort(-expect, kind="stable")[:2])


def _fixed_losses(monkeypatch, with_inst, without):
    from workbench.selection import perplexity

    monkeypatch.setattr(perplexity, "_losses", lambda pool, knobs, with_instruction, desc:
                        np.array(with_inst if with_instruction else without, dtype=float))


# loss(r|i), loss(r): row 0 is a hard row with big losses, row 1 an easy row with small ones,
# rows 2 and 3 have IFD > 1 and = 1 (the instruction does not help).
WITH, WITHOUT = [4.0, 0.3, 1.0, 2.0], [5.0, 0.5, 0.9, 2.0]


def test_ifd_orders_by_perplexity_ratio_not_loss_ratio(make_pool, monkeypatch):
    """Worked case: loss ratios 0.8 (row 0) > 0.6 (row 1), but perplexity ratios
    e^(4-5) = 0.37 (row 0) < e^(0.3-0.5) = 0.82 (row 1): the reference ranks row 1 first."""
    _fixed_losses(monkeypatch, WITH, WITHOUT)
    pool = make_pool(PAIRS[:4])
    ref = select(pool, "ifd", k=2, scorer="tiny-llama", progress=False)
    np.testing.assert_allclose(ref.scores, [np.exp(-1.0), np.exp(-0.2), np.exp(0.1), 1.0])
    assert ref.indices == [1, 0]
    old = select(pool, "ifd", k=2, scorer="tiny-llama", progress=False, score="loss_ratio")
    np.testing.assert_allclose(old.scores, [0.8, 0.6, 1.0 / 0.9, 1.0])
    assert old.indices == [0, 1]


def test_ifd_at_or_above_one_is_dropped_even_if_that_leaves_fewer_than_k(make_pool, monkeypatch):
    _fixed_losses(monkeypatch, WITH, WITHOUT)
    pool = make_pool(PAIRS[:4])
    with pytest.warns(UserWarning, match="only 2 of the k=3 rows"):
        sel = select(pool, "ifd", k=3, scorer="tiny-llama", progress=False)
    assert sel.indices == [1, 0]                       # rows 2 (IFD 1.1) and 3 (IFD exactly 1) excluded
    assert sel.diagnostics["above_max_ifd"] == 2 and sel.diagnostics["short_of_k"] == 1
    assert "short_of_k 1" in sel.summary()
    # the named option keeps k rows and ranks the filtered ones last
    kept = select(pool, "ifd", k=4, scorer="tiny-llama", progress=False, above_max="rank_last")
    assert kept.indices[:2] == [1, 0] and set(kept.indices[2:]) == {2, 3}


def test_ifd_bad_score_and_above_max_are_one_line_errors(make_pool, monkeypatch):
    from workbench.errors import WorkbenchError

    _fixed_losses(monkeypatch, WITH, WITHOUT)
    with pytest.raises(WorkbenchError, match="score: expected ppl_ratio or loss_ratio"):
        select(make_pool(PAIRS[:4]), "ifd", k=1, score="ratio")
    with pytest.raises(WorkbenchError, match="above_max: expected drop or rank_last"):
        select(make_pool(PAIRS[:4]), "ifd", k=1, above_max="keep")
    with pytest.raises(WorkbenchError, match="no row has IFD < max_ifd=0.1"):
        select(make_pool(PAIRS[:4]), "ifd", k=1, max_ifd=0.1)

    # raw text has no instruction: refused before any scoring (it took minutes, then said "no row has IFD < 1")
    import workbench.selection.perplexity as perplexity

    monkeypatch.setattr(perplexity, "_losses", lambda *a, **k: pytest.fail("scored raw text"))
    with pytest.raises(WorkbenchError, match="no row has an instruction"):
        select([{"text": "A document."}, {"text": "Another one."}], "ifd", k=1)


def test_ifd_cap_ranks_rows_at_or_above_max_last_with_rank_last(make_pool):
    full = select(make_pool(PAIRS), "ifd", k=5, scorer="tiny-llama", progress=False, max_ifd=1e9)
    cap = float(np.sort(full.scores)[3])  # the two highest rows sit at/above the cap
    capped = select(make_pool(PAIRS), "ifd", k=5, scorer="tiny-llama", progress=False, max_ifd=cap,
                    above_max="rank_last")
    assert set(capped.indices[-2:]) == set(full.indices[:2])
    assert capped.diagnostics["above_max_ifd"] == 2


def test_perplexity_order_high_and_low(make_pool):
    hi = select(make_pool(PAIRS), "perplexity", k=2, scorer="tiny-llama", progress=False)
    lo = select(make_pool(PAIRS), "perplexity", k=2, scorer="tiny-llama", progress=False, order="low")
    loss = hi.diagnostics["loss"]
    assert hi.indices == list(np.argsort(-loss)[:2]) and lo.indices == list(np.argsort(loss)[:2])


@pytest.mark.slow
def test_ifd_prefers_responses_the_instruction_does_not_explain(make_pool):
    """With a real model: a response copied from its instruction is predictable given the
    instruction (IFD far below 1); an unrelated answer is not (IFD near 1)."""
    facts = ["The heart pumps blood through a network of arteries and veins.",
             "Volcanoes form where magma rises through cracks in the crust.",
             "Bees communicate the location of flowers with a waggle dance.",
             "Copper conducts electricity well and is used in most wiring."]
    unrelated = ["Bread rises because yeast releases carbon dioxide while it ferments.",
                 "The violin has four strings tuned in perfect fifths.",
                 "Chess openings aim to control the centre of the board early.",
                 "Glaciers carve U-shaped valleys as they slowly move downhill."]
    pairs = [(f"Copy this sentence exactly: {f}", f) for f in facts] + \
            [(f"Copy this sentence exactly: {f}", u) for f, u in zip(facts, unrelated)]
    sel = select(make_pool(pairs), "ifd", k=4, scorer="smollm2-135m-instruct", progress=False, max_ifd=10.0)
    assert set(sel.indices) == {4, 5, 6, 7}
    assert sel.scores[:4].max() < 0.5 < sel.scores[4:].min()


def test_scores_of_the_same_pool_are_reused_in_process(make_pool, monkeypatch):
    from workbench.selection import scoring

    calls = []
    real = scoring.response_losses
    monkeypatch.setattr(scoring, "response_losses", lambda *a, **k: calls.append(1) or real(*a, **k))
    pairs = PAIRS + [("One more row, unseen so far.", "Indeed.")]
    a = select(make_pool(pairs), "ifd", k=2, scorer="tiny-llama", progress=False)
    assert len(calls) == 2                       # with and without the instruction
    b = select(make_pool(pairs), "ifd", k=2, scorer="tiny-llama", progress=False)
    p = select(make_pool(pairs), "perplexity", k=2, scorer="tiny-llama", progress=False)
    assert len(calls) == 2 and a.indices == b.indices  # both reuse the losses
    np.testing.assert_allclose(p.diagnostics["loss"], a.diagnostics["loss_with_instruction"])
    select(make_pool(pairs[:-1] + [("One more row, unseen so far.", "Changed.")]), "ifd", k=2,
           scorer="tiny-llama", progress=False)
    assert len(calls) == 4                       # a different pool is scored afresh
