"""UDS scoring: `uds_select` on one batch, and the offline `uds` strategy over a pool
(the paper's online use, inside the training loop, is not implemented)."""
import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.selection import uds_select, update_memory
from workbench.selection.uds import nuclear_norms


def _logits(rank, rng, tokens=12, vocab=50):
    m = rng.standard_normal((tokens, rank)) @ rng.standard_normal((rank, vocab))
    return m / np.linalg.norm(m) * 10.0  # equal Frobenius norm: only the spread differs


def test_nuclear_norm_matches_singular_values():
    m = np.random.default_rng(0).standard_normal((5, 7))
    assert nuclear_norms([m])[0] == pytest.approx(np.linalg.svd(m, compute_uv=False).sum(), rel=1e-5)


def test_uds_prefers_high_nuclear_norm_and_far_from_memory():
    rng = np.random.default_rng(0)
    logits = [_logits(1, rng), _logits(12, rng), _logits(1, rng), _logits(12, rng)]
    memory = np.eye(4)[:2]                    # rows 0 and 1 were just trained on
    emb = np.eye(4)[[0, 1, 2, 3]]             # rows 2, 3 are new directions
    # utility only: the two full-rank samples
    idx, scores, parts = uds_select(logits, emb, memory, 2, diversity_weight=0.0)
    assert set(idx) == {1, 3} and parts["nuclear_norm"][1] > parts["nuclear_norm"][0]
    # diversity only: the two far from memory
    idx, _, parts = uds_select(logits, emb, memory, 2, diversity_weight=1.0)
    assert set(idx) == {2, 3} and np.allclose(parts["memory_distance"], [0, 0, 1, 1])
    # both: the full-rank sample far from memory wins
    idx, _, _ = uds_select(logits, emb, memory, 1)
    assert idx.tolist() == [3]


def test_uds_bad_b_and_memory_fifo():
    rng = np.random.default_rng(0)
    with pytest.raises(WorkbenchError, match="b must be in"):
        uds_select([_logits(1, rng)], np.eye(1), None, 2)
    mem = update_memory(None, np.eye(3)[:2], size=3)
    mem = update_memory(mem, np.eye(3)[2:] * 2, size=2)
    assert mem.shape == (2, 3) and mem[-1, 2] == 2 and mem[0, 1] == 1


def _pool(make_pool):
    pairs = [("Say yes.", "yes"), ("Count to five.", "one two three four five"),
             ("Name a colour.", "Blue."), ("Hi", "Hello! How can I help you today?"),
             ("Translate merci.", "thank you"), ("Spell cat.", "c a t"),
             ("Add 2 and 2.", "4"), ("Write a haiku.", "Soft rain on the roof / the garden drinks")]
    return pairs, make_pool(pairs)


def test_uds_strategy_is_offline_and_listed_as_such():
    from workbench.selection import get_strategy

    summary = get_strategy("uds").summary
    assert "offline" in summary and "online use is not implemented" in summary


def test_uds_strategy_keeps_highest_nuclear_norm_per_batch(make_pool):
    """diversity_weight=0: inside each batch of 4, the 2 rows with the largest nuclear norm of
    their response logits; the norm itself checked by hand on one row."""
    import torch

    from workbench.selection import select
    from workbench.selection.scoring import load_scorer

    pairs, pool = _pool(make_pool)
    sel = select(pool, "uds", k=4, scorer="tiny-llama", batch_size=4, diversity_weight=0.0,
                 embeddings=np.eye(8, dtype=np.float32))
    d = sel.diagnostics
    assert d["online"] is False and d["batches"] == 2 and len(sel.indices) == 4
    for j in range(2):
        members = np.where(d["batch_of"] == j)[0]
        kept = [i for i in sel.indices if d["batch_of"][i] == j]
        assert set(kept) == set(members[np.argsort(-d["nuclear_norm"][members])[:2]])
    model, tok = load_scorer("tiny-llama")
    prefix = tok.apply_chat_template([{"role": "user", "content": pairs[1][0]}], add_generation_prompt=True,
                                     tokenize=False)
    pre = tok(prefix, add_special_tokens=False)["input_ids"]
    res = tok(pairs[1][1], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([pre + res])).logits[0, len(pre) - 1:-1].float()
    assert d["nuclear_norm"][1] == pytest.approx(float(torch.linalg.svdvals(logits).sum()), rel=1e-4)


def test_uds_strategy_memory_steers_later_batches_away_from_kept_rows(make_pool):
    """diversity_weight=1: after the first batch, each batch keeps the rows farthest from the
    memory of rows already kept; rows identical to a kept row score distance 0."""
    from workbench.selection import select

    _, pool = _pool(make_pool)
    emb = np.repeat(np.eye(4, dtype=np.float32), 2, axis=0)    # rows 2i and 2i+1 are twins
    sel = select(pool, "uds", k=4, scorer="tiny-llama", batch_size=4, diversity_weight=1.0, embeddings=emb,
                 seed=5)
    d = sel.diagnostics
    second = [i for i in sel.indices if d["batch_of"][i] == 1]
    # seed 5: batch 1 keeps rows 1 and 4; batch 2 holds their twins 0 and 5 and the new pair 6, 7
    assert sel.indices == [1, 4, 7, 6] and sorted(d["memory_distance_when_scored"][[0, 5, 6, 7]]) == [0, 0, 1, 1]
    others = [i for i in np.where(d["batch_of"] == 1)[0] if i not in second]
    assert min(d["memory_distance_when_scored"][second]) >= max(d["memory_distance_when_scored"][others])
    first = [i for i in sel.indices if d["batch_of"][i] == 0]
    for i in np.where(d["batch_of"] == 1)[0]:   # a twin of a kept row is at distance 0
        assert (d["memory_distance_when_scored"][i] < 1e-6) == any(i // 2 == f // 2 for f in first)
