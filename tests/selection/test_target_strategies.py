"""DSIR and ZIP-FIT on pools where the target-like rows are known."""
import random

import numpy as np

from workbench.selection import select
from workbench.selection.dsir import bag_of_ngrams, hashed_ngrams, kl

R = random.Random(0)
FRUIT = ["apple", "pear", "plum", "fig", "kiwi", "lime"]
TOOLS = ["hammer", "wrench", "saw", "drill", "chisel", "clamp"]


def math_row():
    a, b = R.randint(1, 99), R.randint(1, 99)
    return (f"What is {a} plus {b}?", f"The sum of {a} and {b} is {a + b}, so the answer is {a + b}.")


def cooking_row():
    f, g = R.sample(FRUIT, 2)
    return (f"How do I cook {f} with {g}?", f"Slice the {f}, simmer it with the {g} and sugar, then serve it warm.")


def workshop_row():
    t, u = R.sample(TOOLS, 2)
    return (f"When should I use a {t} instead of a {u}?",
            f"Use a {t} for rough work; a {u} suits finer jobs in the workshop.")


def test_dsir_picks_target_like_rows(make_pool):
    pairs = [math_row() for _ in range(30)] + [cooking_row() for _ in range(60)] + [workshop_row() for _ in range(60)]
    target = [" ".join(math_row()) for _ in range(20)]  # fresh numbers: not copies of the pool
    sel = select(make_pool(pairs), "dsir", k=30, target=target, seed=0)
    assert sum(i < 30 for i in sel.indices) >= 27  # Gumbel sampling may let a few others in
    assert sel.scores[:30].min() > sel.scores[30:].max()  # every math row outweighs every other row
    d = sel.diagnostics
    assert d["kl_reduction"] > 0 and d["kl_target_selected"] < d["kl_target_pool"]
    # and more than a random subset of the same size achieves
    rnd = select(make_pool(pairs), "random", k=30, seed=0).indices
    raw = hashed_ngrams([f"{i}\n{r}" for i, r in pairs])
    p_t = bag_of_ngrams(hashed_ngrams(target).sum(0), 1.0)
    kl_random = kl(p_t, bag_of_ngrams(raw[rnd].sum(0), 1.0))
    assert d["kl_target_selected"] < kl_random


def test_dsir_top_k_is_deterministic_and_matches_weights(make_pool):
    pairs = [math_row() for _ in range(10)] + [cooking_row() for _ in range(10)]
    target = [" ".join(math_row()) for _ in range(5)]
    a = select(make_pool(pairs), "dsir", k=5, target=target, top_k=True, seed=1)
    b = select(make_pool(pairs), "dsir", k=5, target=target, top_k=True, seed=2)
    assert a.indices == b.indices == list(np.argsort(-a.scores, kind="stable")[:5])


def test_hashed_ngrams_count_unigrams_and_bigrams():
    x = hashed_ngrams(["Hello, world", "a b"], num_buckets=2 ** 18)
    # "hello" "," "world" + "hello ," ", world" = 5 ; "a" "b" "a b" = 3
    assert x.sum(axis=1).A.ravel().tolist() == [5, 3]


def test_zipfit_ranks_near_duplicates_of_target_first(make_pool):
    target = ["def add(a, b):\n    return a + b  # add two numbers",
              "for i in range(10):\n    print(i * i)  # squares"]
    near = [("", target[0].replace("add", "plus")), ("", target[1].replace("10", "12")),
            ("", target[0] + " "), ("", target[1] + "\n# done")]
    other = [cooking_row() for _ in range(10)] + [workshop_row() for _ in range(10)]
    pairs = other[:7] + near[:2] + other[7:] + near[2:]
    near_idx = {7, 8, len(pairs) - 2, len(pairs) - 1}
    sel = select(make_pool(pairs), "zipfit", k=4, target=target, progress=False)
    assert set(sel.indices) == near_idx
    assert min(sel.scores[list(near_idx)]) > max(np.delete(sel.scores, list(near_idx)))
