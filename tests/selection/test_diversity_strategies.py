"""k-means (Diversify and Conquer) and Deita-style diversity on pools with known groups."""
import numpy as np
import pytest

from workbench.selection import select
from workbench.selection.kmeans import allocate, proportional_quotas


def blobs(sizes, dim=8, seed=0, spread=0.05):
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:len(sizes)] * 5
    emb = np.concatenate([c + spread * rng.standard_normal((n, dim)) for c, n in zip(centres, sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return emb.astype(np.float32), truth


def test_proportional_quotas_hand_worked():
    """The reference gives cluster c int(|c| / N · budget) rows; the rows its flooring leaves
    over go to the largest fractional parts (ties: lower cluster index)."""
    assert proportional_quotas([50, 30, 20], 10).tolist() == [5, 3, 2]    # exact shares
    # 7,5,3 of 15 rows, budget 6: 2.8, 2.0, 1.2 → floor 2, 2, 1 (5 rows) → +1 to the .8
    assert proportional_quotas([7, 5, 3], 6).tolist() == [3, 2, 1]
    # 80,4,4,4,4 of 96, budget 10: 8.33, 0.42 ×4 → floor 8,0,0,0,0 → +1 to two of the .42s
    assert proportional_quotas([80, 4, 4, 4, 4], 10).tolist() == [8, 1, 1, 0, 0]
    assert proportional_quotas([3, 3, 3], 9).tolist() == [3, 3, 3]


def test_kmeans_default_budget_is_proportional_to_cluster_size(make_pool):
    emb, truth = blobs([42, 30, 12, 6])                  # 90 rows; k=15 → 7, 5, 2, 1 exactly
    ds = make_pool([(f"q{i}", f"a{i}") for i in range(len(truth))])
    sel = select(ds, "kmeans", k=15, n_clusters=4, embeddings=emb)
    assert np.bincount(truth[sel.indices], minlength=4).tolist() == [7, 5, 2, 1]
    assert sorted(sel.diagnostics["cluster_sizes"]) == [6, 12, 30, 42]
    equal = select(ds, "kmeans", k=15, n_clusters=4, embeddings=emb, allocation="equal")
    assert sorted(np.bincount(truth[equal.indices], minlength=4).tolist()) == [3, 4, 4, 4]


def test_kmeans_equal_allocation_covers_every_cluster_where_random_does_not(make_pool):
    sizes = [80, 4, 4, 4, 4]
    emb, truth = blobs(sizes)
    ds = make_pool([(f"q{i}", f"a{i}") for i in range(len(truth))])
    sel = select(ds, "kmeans", k=10, n_clusters=5, embeddings=emb, allocation="equal")
    assert set(truth[sel.indices]) == set(range(5))
    assert sel.diagnostics["clusters_covered"] == 5
    assert sorted(np.bincount(truth[sel.indices])) == [2, 2, 2, 2, 2]
    # the baseline misses small clusters for most seeds: the test discriminates
    missed = sum(len(set(truth[select(ds, "random", k=10, seed=s).indices])) < 5 for s in range(10))
    assert missed >= 5


def test_kmeans_centroid_picks_nearest_centre(make_pool):
    emb, truth = blobs([10, 10])
    emb[3] = np.eye(8)[0] * 5  # exactly on the first centre
    ds = make_pool([(f"q{i}", f"a{i}") for i in range(20)])
    sel = select(ds, "kmeans", k=2, n_clusters=2, within="centroid", embeddings=emb)
    assert 3 in sel.indices


def test_allocate_water_fills_small_clusters():
    q = allocate(np.array([1, 10, 10]), np.ones(3), 9)
    assert q.tolist()[0] == 1 and q.sum() == 9 and abs(q[1] - q[2]) <= 1
    assert allocate(np.array([5, 5]), np.array([3.0, 1.0]), 4).tolist() == [3, 1]


def test_kmeans_reweighting_follows_usefulness(make_pool):
    emb, truth = blobs([30, 30, 30])
    ds = make_pool([(f"q{i}", f"a{i}") for i in range(90)])

    def cluster_of_blob0_is_useful(pool, labels, chosen):
        blob0 = np.bincount(labels[truth == 0]).argmax()
        return np.where(np.arange(labels.max() + 1) == blob0, 1.0, 0.0)

    sel = select(ds, "kmeans", k=30, n_clusters=3, embeddings=emb, rounds=3,
                 usefulness=cluster_of_blob0_is_useful)
    counts = np.bincount(truth[sel.indices], minlength=3)
    assert counts[0] > counts[1] and counts[0] > counts[2]
    assert len(sel.diagnostics["reweighting"]) == 2


def _blob_usefulness(truth, values):
    def usefulness(pool, labels, chosen):
        u = np.zeros(labels.max() + 1)
        for blob, v in enumerate(values):
            u[np.bincount(labels[truth == blob]).argmax()] = v
        return u
    return usefulness


def test_kmeans_reweighting_draws_the_round_from_softmax_of_usefulness(make_pool):
    """Reference: weights exp(u) / Σ exp(u), the round's budget drawn from them. With
    u = (0, ln 3) blob 1 gets 3/4 of round 2 on average; the earlier reading (softmax of the
    standardised scores, z = ±1) gave it e / (e + 1/e) = 0.88, i.e. 88-89 of 100 rows."""
    emb, truth = blobs([200, 200])
    ds = make_pool([(f"q{i}", f"a{i}") for i in range(400)])
    useful = _blob_usefulness(truth, [0.0, np.log(3.0)])
    second = []
    for seed in range(4):
        sel = select(ds, "kmeans", k=200, n_clusters=2, embeddings=emb, rounds=2, usefulness=useful, seed=seed)
        assert np.bincount(truth[sel.indices[:100]]).tolist() == [50, 50]       # round 1: ∝ size
        (hist,) = sel.diagnostics["reweighting"]
        assert sorted(hist["weights"]) == pytest.approx([0.25, 0.75])
        second.append(np.sum(truth[sel.indices[100:]] == 1))
    assert 68 <= np.mean(second) <= 82 and len(set(second)) > 1              # drawn, not fixed quotas
    old = select(ds, "kmeans", k=200, n_clusters=2, embeddings=emb, rounds=2, usefulness=useful,
                 reweight="softmax_z")
    assert np.sum(truth[old.indices[100:]] == 1) >= 88


def test_sampled_round_is_capped_by_what_is_left_and_still_spends_its_budget(make_pool):
    emb, truth = blobs([20, 60])
    ds = make_pool([(f"q{i}", f"a{i}") for i in range(80)])
    sel = select(ds, "kmeans", k=60, n_clusters=2, embeddings=emb, rounds=2,
                 usefulness=_blob_usefulness(truth, [50.0, 0.0]))                # all weight on the small blob
    assert len(sel.indices) == 60 and np.sum(truth[sel.indices] == 0) == 20    # 5 + the 15 left, rest redrawn


def test_kmeans_reward_gap_usefulness_generates_with_the_fine_tuned_scorer(make_pool):
    """reward_gap: per cluster, mean of reward(gold) − reward(generated answer) over its
    selected rows. A reward of 1 for exactly "yes": the "yes" cluster's gold scores 1 and a
    tiny model's greedy answer 0; the other cluster's gold and answers both score 0."""
    pairs = [("Say yes.", "yes")] * 12 + [("Count.", "one two three four five")] * 12
    emb, truth = blobs([12, 12])
    seen = []

    def reward(instructions, responses):
        seen.append(len(responses))
        return [float(r == "yes") for r in responses]

    sel = select(make_pool(pairs), "kmeans", k=8, n_clusters=2, embeddings=emb, rounds=2, scorer="tiny-llama",
                 train_steps=1, max_new_tokens=4, reward=reward)
    (hist,) = sel.diagnostics["reweighting"]
    yes_cluster = np.bincount(sel.diagnostics["labels"][truth == 0]).argmax()
    assert hist["usefulness"][yes_cluster] == 1.0 and hist["usefulness"][1 - yes_cluster] == 0.0
    assert seen == [4, 4]                                                      # gold and generated, 4 picks
    assert hist["weights"][yes_cluster] == pytest.approx(np.e / (np.e + 1))
    default = select(make_pool(pairs), "kmeans", k=8, n_clusters=2, embeddings=emb, rounds=2,
                     scorer="tiny-llama", train_steps=1, max_new_tokens=4)
    assert np.all(np.isfinite(default.diagnostics["reweighting"][0]["usefulness"]))


def test_kmeans_bad_allocation_reweight_usefulness(make_pool):
    from workbench.errors import WorkbenchError

    emb, _ = blobs([5, 5])
    ds = make_pool([(f"q{i}", f"a{i}") for i in range(10)])
    for knobs, msg in [({"allocation": "size"}, "allocation: expected proportional or equal"),
                       ({"reweight": "softmax"}, "reweight: expected sample or softmax_z"),
                       ({"rounds": 2, "usefulness": "gain"}, "usefulness: expected reward_gap, loss_reduction")]:
        with pytest.raises(WorkbenchError, match=msg):
            select(ds, "kmeans", k=4, n_clusters=2, embeddings=emb, **knobs)


def test_kmeans_loss_reduction_usefulness_runs_a_real_fine_tune(make_pool):
    pairs = [("Say yes.", "yes yes yes yes")] * 12 + [("Count.", "one two three four five")] * 12
    emb, _ = blobs([12, 12])
    sel = select(make_pool(pairs), "kmeans", k=8, n_clusters=2, embeddings=emb, rounds=2,
                 scorer="tiny-llama", train_steps=3, learning_rate=1e-2, probe_per_cluster=2,
                 usefulness="loss_reduction", reweight="softmax_z")
    (hist,) = sel.diagnostics["reweighting"]
    assert len(hist["usefulness"]) == 2 and np.all(np.isfinite(hist["usefulness"]))
    assert max(hist["usefulness"]) > 0  # training on a cluster lowers its held-out loss
    assert abs(sum(hist["weights"]) - 1) < 1e-9


def test_kmeans_with_minilm_separates_topics(make_pool):
    topics = {
        "cooking": ["How do I bake bread?", "Best way to roast chicken?", "How long to boil an egg?",
                    "Recipe for tomato soup?"],
        "code": ["How do I reverse a list in Python?", "What is a segfault in C?",
                 "Explain recursion in programming.", "How to read a file in Rust?"],
        "sport": ["Who won the football world cup?", "How do I improve my tennis serve?",
                  "Rules of basketball?", "How to train for a marathon?"],
    }
    pairs = [(q, "") for qs in topics.values() for q in qs]
    truth = np.repeat(np.arange(3), 4)
    sel = select(make_pool(pairs), "kmeans", k=3, n_clusters=3, text="instruction", within="centroid")
    assert set(truth[sel.indices]) == {0, 1, 2}


def test_deita_drops_near_duplicates(make_pool):
    base = ["Explain how vaccines train the immune system to recognise a virus.",
            "Write a Python function that checks whether a number is prime.",
            "Describe the causes of the French Revolution in three sentences.",
            "Give me a packing list for a week-long hiking trip in the Alps."]
    pairs = []
    for g, b in enumerate(base):
        # each group: the question, a copy and a near-copy; answers grow within a group and every
        # group outscores the next, so score order alone would take group 0 three times
        def answer(j):
            return " ".join(f"word{m}" for m in range(40 - 8 * g - 2 * (2 - j)))

        pairs += [(b, answer(0)), (b, answer(1)), (b.replace(".", "!"), answer(2))]
    sel = select(make_pool(pairs), "deita", k=4, text="instruction")
    groups = [i // 3 for i in sel.indices]
    assert sorted(groups) == [0, 1, 2, 3]  # one per group, not the 3 best-scored copies of one
    assert all(i % 3 == 2 for i in sel.indices)  # the best-scored member of each group
    assert sel.diagnostics["dropped_near_duplicates"] >= 1 and sel.diagnostics["filled"] == 0
    # with the diversity filter off, score order alone takes copies
    plain = select(make_pool(pairs), "deita", k=4, text="instruction", threshold=-1.0)
    assert len({i // 3 for i in plain.indices}) < 4


def test_deita_score_by_column_and_bad_column(make_pool):
    pairs = [(f"distinct question number {i} about topic {i * 7}", f"answer {i}") for i in range(6)]
    ds = make_pool(pairs, rating=[1, 5, 2, 6, 3, 4])
    emb = np.eye(6, dtype=np.float32)
    assert select(ds, "deita", k=2, score_by="rating", embeddings=emb).indices == [3, 1]
    from workbench.errors import WorkbenchError
    with pytest.raises(WorkbenchError, match="no column 'stars'"):
        select(ds, "deita", k=2, score_by="stars", embeddings=emb)
