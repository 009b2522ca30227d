import datasets
import numpy as np
import pytest

from workbench.errors import UnknownNameError, WorkbenchError
from workbench.selection import Selection, list_strategies, select
from workbench.selection.text import pair_of, to_pool

PAIRS = [(f"question {i}", "x" * (i + 1)) for i in range(10)]


def test_every_strategy_is_listed_with_knob_dataclass():
    names = {s.name for s in list_strategies()}
    assert {"random", "longest", "perplexity", "ifd", "kmeans", "dsir", "zipfit", "deita"} <= names


def test_selection_fields_and_subset(make_pool):
    ds = make_pool(PAIRS)
    sel = select(ds, "longest", k=3)
    assert isinstance(sel, Selection) and sel.strategy == "longest"
    assert sel.indices == [9, 8, 7]
    assert sel.scores.shape == (10,)
    sub = sel.subset(ds)
    assert isinstance(sub, datasets.Dataset) and len(sub) == 3
    assert sub[0]["completion"][0]["content"] == "x" * 10
    assert sel.diagnostics["pool_size"] == 10 and "chose 3 of 10" in sel.summary()


def test_fraction_rounds_to_rows(make_pool):
    assert len(select(make_pool(PAIRS), "random", fraction=0.25).indices) == 2  # round(2.5) = 2


def test_random_is_seeded_and_distinct(make_pool):
    ds = make_pool(PAIRS)
    a, b = select(ds, "random", k=5, seed=1), select(ds, "random", k=5, seed=1)
    assert a.indices == b.indices and len(set(a.indices)) == 5
    assert a.indices != select(ds, "random", k=5, seed=2).indices


@pytest.mark.parametrize("kwargs, match", [
    (dict(strategy="nope", k=1), "unknown selection strategy 'nope'"),
    (dict(strategy="longest", k=1, colour="red"), "selection.longest key 'colour'"),
    (dict(strategy="longest", k=11), "k=11 is larger than the pool"),
    (dict(strategy="longest"), "exactly one of k"),
    (dict(strategy="longest", k=2, fraction=0.5), "exactly one of k"),
    (dict(strategy="longest", fraction=1.5), "fraction must be in"),
    (dict(strategy="longest", k=0), "positive integer"),
    (dict(strategy="longest", k=1, unit="bytes"), "unit: expected chars or words"),
    (dict(strategy="dsir", k=1), "needs a target"),
    (dict(strategy="random", k=1, seed=-1), "seed must be an integer >= 0"),  # numpy's ValueError before
    (dict(strategy="random", k=1, seed="[1"), "seed must be an integer >= 0"),
])
def test_bad_input_is_one_clear_line(make_pool, kwargs, match):
    with pytest.raises(WorkbenchError, match=match) as e:
        select(make_pool(PAIRS), **kwargs)
    assert "\n" not in str(e.value)


def test_unknown_strategy_lists_known(make_pool):
    with pytest.raises(UnknownNameError, match="known: .*dsir"):
        select(make_pool(PAIRS), "dsri", k=1)


def test_pairs_from_every_canonical_shape():
    assert pair_of({"messages": [{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": "hello"}]}) == ("be brief\nhi", "hello")
    assert pair_of({"prompt": "p", "completion": "c"}) == ("p", "c")
    assert pair_of({"prompt": [{"role": "user", "content": "p"}], "chosen": [{"role": "assistant", "content": "good"}],
                    "rejected": [{"role": "assistant", "content": "bad"}]}) == ("p", "good")
    assert pair_of({"text": "plain"}) == ("", "plain")
    with pytest.raises(WorkbenchError, match="row 3: cannot find instruction/response columns"):
        to_pool([{"text": "t"}] * 3 + [{"a": 1}])


def test_task_coverage_before_and_after(make_pool):
    ds = make_pool(PAIRS, category=["math"] * 5 + ["code"] * 5)
    sel = select(ds, "longest", k=3)
    assert sel.diagnostics["coverage_before"] == {"math": 5, "code": 5}
    assert sel.diagnostics["coverage_after"] == {"code": 3}


def test_longest_counts_words_or_chars(make_pool):
    ds = make_pool([("a", "one two three four"), ("b", "abcdefghijklmnopqrstuvwxyz"), ("c", "x y")])
    assert select(ds, "longest", k=1).indices == [1]
    assert select(ds, "longest", k=1, unit="words").indices == [0]
    assert np.allclose(select(ds, "longest", k=1, unit="words").scores, [4, 1, 2])
