"""Every selection strategy: a knob out of its range is one WorkbenchError line naming the knob,
raised before anything is scored. One table drives the test and the test enumerates the
registry, so a new strategy without an entry fails here. Several of these were tracebacks
from deep inside scikit-learn, zlib or the scorer's forward (ngrams=0, level=12,
batch_size=0, max_length=1) or silent nonsense (smoothing=-1, threshold=2, max_target=0)."""
import pytest

from workbench.errors import WorkbenchError
from workbench.selection import list_strategies, select

ROWS = [{"prompt": f"question {i}", "completion": "answer " * (i + 1)} for i in range(8)]
TARGET = {"target": ["a target sentence"]}

# strategy → [(knobs, what the one line says)]
CASES = {
    "random": [({"foo": 1}, "unknown selection.random key 'foo'; known: (none)")],
    "longest": [({"unit": "lines"}, "unit")],
    "dsir": [({**TARGET, "ngrams": 0}, "selection.dsir.ngrams must be ≥ 1, got 0"),
             ({**TARGET, "num_buckets": 0}, "selection.dsir.num_buckets must be ≥ 1, got 0"),
             ({**TARGET, "smoothing": -1}, "selection.dsir.smoothing must be ≥ 0, got -1")],
    "zipfit": [({**TARGET, "level": 12}, "selection.zipfit.level must be ≥ 1 and ≤ 9, got 12"),
               ({**TARGET, "max_target": 0}, "selection.zipfit.max_target must be ≥ 1, got 0")],
    "deita": [({"threshold": 2}, "selection.deita.threshold must be < 2, got 2")],
    "kmeans": [({"temperature": 0}, "selection.kmeans.temperature must be > 0, got 0"),
               ({"learning_rate": float("nan")}, "selection.kmeans.learning_rate must be > 0, got nan"),
               ({"n_clustrs": 2}, "(did you mean 'n_clusters'?)")],
    "perplexity": [({"batch_size": 0}, "selection.perplexity.batch_size must be ≥ 1, got 0"),
                   ({"max_length": 1}, "selection.perplexity.max_length must be ≥ 2, got 1")],
    "ifd": [({"max_length": 0}, "selection.ifd.max_length must be ≥ 2, got 0")],
    "uds": [({"max_length": 1}, "selection.uds.max_length must be ≥ 2, got 1")],
}


def test_every_strategy_has_a_case():
    assert sorted(CASES) == sorted(s.name for s in list_strategies())


TABLE = [(n, k, m) for n, cases in CASES.items() for k, m in cases]


@pytest.mark.parametrize("name,knobs,message", TABLE, ids=[f"{n}-{min(k.keys() - {'target'})}" for n, k, _ in TABLE])
def test_a_bad_knob_is_one_line(name, knobs, message):
    with pytest.raises(WorkbenchError) as e:
        select(ROWS, name, k=2, **knobs)
    text = str(e.value)
    assert message in text and len(text.splitlines()) == 1, text
