"""Every built-in loads, validates, has both splits without overlap, and the shipped files
are exactly what the content modules build."""
import json
from collections import Counter

import pytest

from workbench.cli.main import main as cli
from workbench.data import build, list_datasets, load, validate
from workbench.data.formats import FORMATS

NAMES = [d.name for d in list_datasets()]


def test_all_promised_builtins_are_listed():
    assert set(NAMES) >= {"instructions", "preferences", "arithmetic", "tasks", "feedback", "rankings",
                          "stdlib-docs", "humaneval"}


@pytest.mark.parametrize("name", NAMES)
def test_builtin_loads_and_validates(name):
    info = next(d for d in list_datasets() if d.name == name)
    report = validate(name)
    assert report.ok, report.summary()
    assert report.format == info.format
    train, held = load(name, seed=None), load(name, split="eval", seed=None)
    assert len(train) == info.rows["train"] > 0 and len(held) == info.rows["eval"] > 0
    assert set(FORMATS[info.format]) <= set(train.column_names)
    key = lambda r: json.dumps({k: r[k] for k in FORMATS[info.format] if k != "solution"}, sort_keys=True)  # noqa: E731
    assert not {key(r) for r in train} & {key(r) for r in held}, "train and eval share rows"


def test_instructions_size_mix_and_sft_shape():
    ds = load("instructions", format="prompt_completion", seed=None)
    total = len(ds) + len(load("instructions", split="eval"))
    assert total >= 400
    cats = Counter(ds["category"])
    for c in ("explanation", "how-to", "rewriting", "reasoning", "code", "refusal", "multi-turn"):
        assert cats[c] >= 5, cats
    for r in ds:
        assert r["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in r["completion"]] == ["assistant"]


def test_preferences_cover_every_criterion():
    ds = load("preferences", seed=None)
    assert len(ds) + len(load("preferences", split="eval")) >= 300
    counts = Counter(ds["criterion"])
    assert set(counts) == {"correctness", "helpfulness", "conciseness", "safety", "format"}
    assert min(counts.values()) >= 20
    assert all(r["chosen"] != r["rejected"] for r in ds)


def test_rankings_have_three_or_more_scored_responses():
    for r in load("rankings", max_rows=200):
        assert len(r["responses"]) == len(r["scores"]) >= 3
        assert len(set(r["scores"])) >= 3


def test_humaneval_keeps_tests_and_has_164_problems():
    train, held = load("humaneval", seed=None), load("humaneval", split="eval")
    assert len(train) + len(held) == 164
    row = train[0]
    assert row["task_id"] == "HumanEval/0" and "def check" in row["test"] and row["entry_point"]
    # The canonical solution really passes the problem's own tests.
    scope = {}
    exec(row["prompt"][0]["content"] + row["completion"][0]["content"] + "\n" + row["test"], scope)
    scope["check"](scope[row["entry_point"]])


def test_shipped_files_match_the_content_modules():
    for name in build.SHIPPED:
        for split, text in build.render(name).items():
            shipped = (build.BUILTIN_DIR / f"{name}.{split}.jsonl").read_text(encoding="utf-8")
            assert shipped == text, f"{name}.{split}.jsonl is stale: run python -m workbench.data.build"


def test_cli_lists_builtins_with_counts(capsys):
    assert cli(["datasets"]) == 0
    out = capsys.readouterr().out
    for d in list_datasets():
        line = next(line for line in out.splitlines() if line.startswith(d.name + " "))
        assert d.format in line and str(d.rows["train"]) in line


def test_cli_preview_and_bad_conversion(capsys):
    assert cli(["datasets", "preferences", "--preview", "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert "no problems" in out and "[assistant]" in out
    assert cli(["datasets", "stdlib-docs", "--format", "preference"]) == 2
    assert "cannot convert 'text' data to 'preference'" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["datasets", "preferences", "--preview", "-n", "0"], "-n must be a positive number of rows, got 0"),
    (["datasets", "--preview"], "--preview, --format and --split need a dataset NAME"),  # was the plain listing
    (["datasets", "--split", "eval"], "--preview, --format and --split need a dataset NAME"),
])
def test_cli_preview_flags_without_what_they_need_are_one_line(capsys, argv, message):
    assert cli(argv) == 2
    out = capsys.readouterr()
    assert out.err.startswith(f"workbench datasets: error: {message}") and out.err.count("\n") == 1, out
    assert out.out == ""
