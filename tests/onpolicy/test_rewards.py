"""Reward functions: each rule on hand-written completions, specs and their errors, a user
callable from a file, and a reward model trained with TRL's RewardTrainer."""
import pytest

from workbench.errors import WorkbenchError
from workbench.onpolicy import build_rewards, check_rewards, score

MSG = [{"role": "user", "content": "What is 2 + 3?"}]


def one(spec, completions, **columns):
    total, _ = score(build_rewards(spec), [MSG] * len(completions), completions, columns)
    return total


def test_correct_uses_the_task_checker_and_conversational_completions():
    comps = ["2 + 3 = 5.\nAnswer: 5", "Answer: 6", [{"role": "assistant", "content": "Answer: 5"}], ""]
    assert one("correct", comps, answer=["5"] * 4, task=["arithmetic"] * 4) == [1.0, 0.0, 1.0, 0.0]
    with pytest.raises(WorkbenchError, match="needs an 'answer' column"):
        one("correct", ["Answer: 5"])


def test_partial_credit_toggle_on_sorting():
    comps = ["Answer: 1, 3, 2"]
    cols = dict(answer=["1, 2, 3"], task=["sorting"])
    assert one("correct", comps, **cols) == [pytest.approx(1 / 3)]
    assert one({"correct": {"partial_credit": False}}, comps, **cols) == [0.0]


def test_format_length_keywords():
    assert one("format", ["work\nAnswer: 4", "just 4"]) == [1.0, 0.0]
    assert one({"format": {"pattern": r"\d+$"}}, ["x 4", "x"]) == [1.0, 0.0]
    length = {"length": {"min_words": 2, "max_words": 4}}
    assert one(length, ["one", "one two", "a b c d e f", "a b c d e f g h"]) == [0.75, 1.0, 0.5, 0.0]
    kw = {"keywords": {"include": ["step", "answer"], "exclude": ["sorry"]}}
    assert one(kw, ["Step one. ANSWER: 3", "sorry, no answer", "nothing"]) == [1.0, -0.5, 0.0]


def test_weighted_sum_and_parts():
    total, parts = score(build_rewards({"format": 2.0, "length": {"weight": 0.5, "max_words": 1}}),
                         [MSG, MSG], ["Answer: 5", "no"], {})
    assert parts == {"format": [1.0, 0.0], "length": [0.0, 1.0]}
    assert total == [2.0, 0.5]


def test_python_callable_from_file_and_object(tmp_path):
    f = tmp_path / "my_reward.py"
    f.write_text("def chars(prompts, completions, **kw):\n    return [len(c) / 10 for c in completions]\n")
    assert one({"python": {"function": f"{f}:chars"}}, ["abcde", "a"]) == [0.5, 0.1]
    assert one(lambda prompts, completions, **kw: [1.0 for _ in completions], ["x"]) == [1.0]
    with pytest.raises(WorkbenchError, match="has no function 'nope'"):
        build_rewards({"python": {"function": f"{f}:nope"}})
    with pytest.raises(WorkbenchError, match="does not exist"):
        build_rewards({"python": {"function": "/no/such.py:f"}})


def test_python_reward_is_checked_without_running_it(tmp_path):
    """check_rewards runs before the run directory exists: a missing or broken file is one
    line there; the file's top-level code first runs when the rewards are built."""
    marker = tmp_path / "ran"
    f = tmp_path / "side_effect.py"
    f.write_text(f"open({str(marker)!r}, 'w').close()\n"
                 "def score(prompts, completions, **kw):\n    return [1.0 for _ in completions]\n")
    check_rewards({"python": {"function": f"{f}:score"}})
    assert not marker.exists()
    build_rewards({"python": {"function": f"{f}:score"}})
    assert marker.exists()

    broken = tmp_path / "broken.py"
    broken.write_text("def score(prompts, completions, **kw)\n    return [0.0]\n")
    cases = [({"python": {"function": f"{tmp_path}/missing.py:score"}}, "missing.py does not exist"),
             ({"python": {"function": f"{broken}:score"}}, "broken.py line 1 does not compile (SyntaxError"),
             ({"python": {"function": "no_such_module_xyz:score"}}, "no module named 'no_such_module_xyz'"),
             ({"python": {"function": "just-a-name"}}, "function must be 'module:name' or 'file.py:name'"),
             ({"python": {}}, "function must be 'module:name'"),
             ({"python": {"function": f"{f}:not a name"}}, "is not a Python function name")]
    for spec, needle in cases:
        with pytest.raises(WorkbenchError) as e:
            check_rewards(spec)
        assert needle in str(e.value) and len(str(e.value).splitlines()) == 1


def test_python_reward_whose_top_level_code_fails_is_one_line(tmp_path):
    f = tmp_path / "raises.py"
    f.write_text("raise RuntimeError('no GPU here')\n")
    with pytest.raises(WorkbenchError, match=r"loading .*raises.py' failed \(RuntimeError: no GPU here\)"):
        build_rewards({"python": {"function": f"{f}:score"}})


def test_bad_specs_say_what_and_where():
    with pytest.raises(WorkbenchError, match=r"unknown reward 'corect' \(did you mean 'correct'\?\); known: correct"):
        check_rewards("corect")
    with pytest.raises(WorkbenchError, match="reward 'length': unknown knob 'max'"):
        check_rewards({"length": {"max": 3}})
    with pytest.raises(WorkbenchError, match="weight must be a number"):
        check_rewards({"format": "heavy"})
    with pytest.raises(WorkbenchError, match="empty"):
        check_rewards("")
    with pytest.raises(WorkbenchError, match="not a valid regex"):
        build_rewards({"format": {"pattern": "("}})
    with pytest.raises(WorkbenchError, match="returned 1 scores for 2"):
        score(build_rewards(lambda prompts, completions, **kw: [1.0]), [MSG, MSG], ["a", "b"], {})
    with pytest.raises(WorkbenchError, match="not a reward-model directory"):
        build_rewards({"reward_model": {"path": "/no/such/dir"}})


def test_reward_model_learns_the_preference_pairs(tmp_path):
    """RewardTrainer on 8 built-in preference pairs (tiny-llama): afterwards it scores the
    chosen response above the rejected one on most of them."""
    from workbench import data
    from workbench.onpolicy import train_reward_model

    path = train_reward_model(tmp_path / "rm", model="tiny-llama", max_steps=40, learning_rate=3e-3,
                              batch_size=8, max_rows=8, max_length=256)
    pairs = data.load("preferences", format="preference", max_rows=8)
    fn = build_rewards({"reward_model": {"path": str(path)}})
    prompts = list(pairs["prompt"])
    chosen, _ = score(fn, prompts, [c[0]["content"] for c in pairs["chosen"]], {})
    rejected, _ = score(fn, prompts, [r[0]["content"] for r in pairs["rejected"]], {})
    wins = sum(c > r for c, r in zip(chosen, rejected))
    assert wins >= 7, (chosen, rejected)
