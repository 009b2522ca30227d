"""Each merge method on small hand-built tensors, against a hand computation; the
greedy-soup selection on a hand-made score; the registry and the knob checks."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from workbench.errors import UnknownNameError, WorkbenchError
from workbench.merging import MergeSpec, get_merge_method, register
from workbench.merging.full import merge_state_dicts
from workbench.merging.soup import greedy_select

T1 = torch.tensor([3.0, -1.0, 0.5, -2.0])
T2 = torch.tensor([-1.0, 2.0, 0.4, -3.0])


def combine(method, tensors, weights, **knobs):
    spec = get_merge_method(method)
    return spec.combine(spec.config_cls(**knobs), tensors, weights)


def test_linear_is_the_weighted_average():
    out = combine("linear", [T1, T2], [0.25, 0.75])
    assert torch.allclose(out, torch.tensor([0.0, 1.25, 0.425, -2.75]))


def test_task_arithmetic_scales_the_weighted_sum():
    out = combine("task_arithmetic", [T1, T2], [1.0, 2.0], scale=0.5)
    # 0.5 * (T1 + 2 T2) = 0.5 * [1, 3, 1.3, -8]
    assert torch.allclose(out, torch.tensor([0.5, 1.5, 0.65, -4.0]))


def test_ties_trims_elects_sign_and_takes_the_disjoint_mean():
    # density 0.5 keeps the 2 largest magnitudes of each: T1 → [3, 0, 0, -2], T2 → [0, 2, 0, -3].
    # Elected sign (sign of the sum [3, 2, 0, -5]): +, +, + (ties go positive), −.
    # Disjoint mean over the entries that agree: [3/1, 2/1, 0 (none kept), (-2-3)/2].
    out = combine("ties", [T1, T2], [1.0, 1.0], density=0.5)
    assert torch.allclose(out, torch.tensor([3.0, 2.0, 0.0, -2.5]))


def test_ties_sign_election_total_versus_frequency():
    ts = [torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([-5.0])]
    # total: 1 + 1 − 5 < 0 → only the −5 agrees; frequency: two positives win → mean(1, 1).
    assert combine("ties", ts, [1.0] * 3, density=1.0).item() == -5.0
    assert combine("ties", ts, [1.0] * 3, density=1.0, majority_sign_method="frequency").item() == 1.0


def test_magnitude_prune_keeps_the_largest_then_sums():
    out = combine("magnitude_prune", [T1, T2], [0.5, 0.5], density=0.5)
    # [3, 0, 0, -2]/2 + [0, 2, 0, -3]/2
    assert torch.allclose(out, torch.tensor([1.5, 1.0, 0.0, -2.5]))


def test_dare_drops_at_random_and_rescales_the_rest():
    torch.manual_seed(0)
    tau = torch.randn(20_000)
    out = combine("dare", [tau], [1.0], density=0.25)
    kept = out != 0
    # Every entry is either dropped or tau / density; about a quarter survive.
    assert torch.allclose(out[kept], tau[kept] / 0.25)
    assert 0.23 < kept.float().mean().item() < 0.27
    # density 1 drops nothing: DARE-linear is plain task arithmetic, DARE-TIES is TIES.
    assert torch.allclose(combine("dare", [T1, T2], [1.0, 2.0], density=1.0), T1 + 2 * T2)
    assert torch.allclose(combine("dare", [T1, T2], [1.0, 1.0], density=1.0, combination="ties"),
                          combine("ties", [T1, T2], [1.0, 1.0], density=1.0))


def test_dare_ties_elects_signs_after_the_drop():
    torch.manual_seed(1)
    a, b = torch.randn(1000), torch.randn(1000)
    torch.manual_seed(7)
    out = combine("dare", [a, b], [1.0, 1.0], density=0.5, combination="ties")
    torch.manual_seed(7)  # the same drop, by hand: bernoulli masks in order, rescale, TIES at density 1
    ma, mb = torch.bernoulli(torch.full_like(a, 0.5)), torch.bernoulli(torch.full_like(b, 0.5))
    da, db = a * ma / 0.5, b * mb / 0.5
    sign = torch.where(da + db >= 0, 1.0, -1.0)
    agree_a, agree_b = (da.sign() == sign).float(), (db.sign() == sign).float()
    hand = (da * agree_a + db * agree_b) / torch.clamp(agree_a + agree_b, min=1.0)
    assert torch.allclose(out, hand)


def test_state_dicts_merge_task_vectors_over_the_base_and_keep_ties():
    base = {"w": torch.tensor([1.0, 1.0]), "n": torch.tensor([5])}
    s1 = {"w": torch.tensor([2.0, 1.0]), "n": torch.tensor([5])}
    s2 = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor([5])}
    spec = get_merge_method("task_arithmetic")
    knobs = spec.config_cls()
    out = merge_state_dicts([s1, s2], [1.0, 1.0], lambda t, w: spec.combine(knobs, t, w), base=base)
    assert torch.equal(out["w"], torch.tensor([2.0, 3.0]))      # 1 + (1 + 0), 1 + (0 + 2)
    assert torch.equal(out["n"], torch.tensor([5]))             # integer buffers copied
    shared = torch.tensor([1.0, -1.0])
    tied = {"emb": shared, "head": shared}
    out = merge_state_dicts([tied, {"emb": shared * 3, "head": shared * 3}], [0.5, 0.5],
                            lambda t, w: combine("linear", t, w))
    assert out["emb"] is out["head"] and torch.equal(out["emb"], torch.tensor([2.0, -2.0]))


def test_greedy_soup_keeps_a_run_only_if_the_soup_does_not_get_worse():
    theta = [1.0, 3.0, 10.0, 2.0]
    target = 2.0

    def score(idx):
        return (sum(theta[i] for i in idx) / len(idx) - target) ** 2
    alone = [score([i]) for i in range(4)]          # [1, 1, 64, 0]
    kept, log = greedy_select(alone, score)
    # Order by own score: 3 (0), 0 (1), 1 (1), 2 (64). Soup {3,0}: mean 1.5 → 0.25 > 0, rejected;
    # {3,1}: 2.5 → 0.25, rejected; {3,2}: 6 → 16, rejected.
    assert kept == [3]
    assert [r["candidate"] for r in log] == [3, 0, 1, 2] and [r["kept"] for r in log] == [True] + [False] * 3
    theta[3] = 2.5                                  # now {3 (0.25), 0 (1)} soup: 1.75 → 0.0625: kept
    alone = [score([i]) for i in range(4)]
    kept, _ = greedy_select(alone, score)
    assert kept[:2] == [3, 0] and 2 not in kept


def test_registry_refuses_a_duplicate_name():
    @dataclasses.dataclass
    class Other:
        pass

    spec = get_merge_method("ties")  # the registry loads lazily: fill it first
    with pytest.raises(WorkbenchError, match="'ties' is already registered"):
        register(MergeSpec("ties", Other, "another TIES", None, None))
    assert register(spec) is spec  # the same definition again is fine


@pytest.mark.parametrize("method,knobs,match", [
    ("ties", {"density": 0.0}, r"density must be in \(0, 1\]"),
    ("dare", {"density": 1.5}, r"density must be in \(0, 1\]"),
    ("magnitude_prune", {"density": float("nan")}, r"density must be in \(0, 1\]"),
    ("ties", {"svd_rank": 0}, "svd_rank must be positive"),
    ("greedy_soup", {"eval_rows": 0}, "eval_rows must be positive"),
])
def test_bad_knobs_are_refused_in_the_dataclass(method, knobs, match):
    with pytest.raises(WorkbenchError, match=match):
        get_merge_method(method).config_cls(**knobs)


def test_choices_are_checked():
    with pytest.raises(UnknownNameError, match="combination"):
        get_merge_method("dare").config_cls(combination="median")
    with pytest.raises(UnknownNameError, match="merge method 'soup'"):
        get_merge_method("soup")


def test_every_method_has_a_card_in_docs_merging():
    from workbench.merging import list_merge_methods

    for spec in list_merge_methods():
        card = spec.card
        assert card.startswith(f"## {spec.name}"), spec.name
        assert "Formula" in card and "Watch" in card, spec.name
