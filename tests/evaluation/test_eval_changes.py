"""EvalResult.changes: tuned minus base per task, with the combined standard error."""
import math

import pytest

from workbench.evaluation.results import EvalResult, TaskScore


def _score(model, task, value, se):
    return TaskScore(model, task, "acc", value, se, 20, 20, {"acc": {"value": value, "stderr": se}})


def test_changes_against_base_by_hand():
    res = EvalResult([_score("base", "a", 0.50, 0.10), _score("tuned", "a", 0.80, 0.05),
                      _score("base", "b", 0.30, None), _score("tuned", "b", 0.35, None),
                      _score("base", "c", 0.40, 0.03), _score("tuned", "c", 0.42, 0.04)], {})
    t = res.changes("base").set_index("task")
    assert t.loc["a", "change"] == pytest.approx(0.30)
    assert t.loc["a", "stderr"] == pytest.approx(math.sqrt(0.1 ** 2 + 0.05 ** 2))
    assert bool(t.loc["a", "beyond_noise"]) is True          # 0.30 > 2 × 0.112
    assert bool(t.loc["c", "beyond_noise"]) is False         # 0.02 < 2 × 0.05
    assert t.loc["b", "beyond_noise"] is None                # no stderr: cannot say
    with pytest.raises(KeyError, match="base model 'nope'"):
        res.changes("nope")
