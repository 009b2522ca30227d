"""What the probes read as prompts from a file (`--prompts` of `shift`, `generate`, `chat`):
a table of prompts only gives every row; a table with answers is a dataset, whose eval split
(the rows tuning held out) is used, as for a dataset name."""
from __future__ import annotations

import json

import pytest

from workbench.analysis.prompts import normalise_prompts
from workbench.decoding.generator import load_prompts
from workbench.errors import WorkbenchError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("rows", [
    [{"prompt": f"Question {i}?"} for i in range(10)],
    [{"prompt": [{"role": "user", "content": f"Question {i}?"}]} for i in range(10)],
    [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question {i}?"}]}
     for i in range(10)],
    [{"conversations": [{"from": "human", "value": f"Question {i}?"}]} for i in range(10)],
], ids=["prompt-text", "prompt-messages", "messages-ending-on-user", "sharegpt"])
def test_a_table_of_prompts_gives_every_row(tmp_path, rows):
    # A prompts-only .jsonl was refused ("cannot tell the format") or, as messages, "no assistant turn".
    path = _jsonl(tmp_path / "prompts.jsonl", rows)
    msgs = normalise_prompts(str(path))
    assert len(msgs) == 10 and [m[-1]["content"] for m in msgs] == [f"Question {i}?" for i in range(10)]
    assert msgs[0][-1]["role"] == "user"
    assert len(load_prompts(str(path))[0]) == 10
    assert len(normalise_prompts(str(path), max_prompts=3)) == 3


def test_a_csv_of_prompts(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text("prompt\nWhat is 1?\nWhat is 2?\n")
    assert [m[0]["content"] for m in normalise_prompts(str(path))] == ["What is 1?", "What is 2?"]


def test_a_table_with_answers_is_a_dataset_and_gives_its_eval_split(tmp_path):
    path = _jsonl(tmp_path / "train.jsonl", [{"prompt": f"Q{i}?", "completion": "A."} for i in range(20)])
    msgs, _ = load_prompts(str(path))
    assert len(msgs) == 2  # the fixed 10% held out, as training holds it out


def test_a_bad_prompt_row_is_named(tmp_path):
    path = _jsonl(tmp_path / "prompts.jsonl", [{"prompt": "fine"}, {"prompt": ""}])
    with pytest.raises(WorkbenchError, match=r"prompts\.jsonl row 2: 'prompt' is empty"):
        normalise_prompts(str(path))


@pytest.mark.parametrize("command", [
    ["select", "--dataset", "{f}", "--strategy", "longest", "--fraction", "0.5", "--out", "{f}"],
    ["generate", "--model", "tiny-llama", "--prompts", "{f}", "--out", "{f}"],
    ["shift", "--base", "tiny-llama", "--tuned", "tiny-llama", "--prompts", "{f}", "--out", "{stem}.html"],
], ids=["select", "generate", "shift-default-json"])
def test_an_output_over_the_input_is_refused(tmp_path, monkeypatch, capsys, command):
    # select --out naming its own dataset cut 201 rows to 36 in place
    from workbench.cli.main import main

    monkeypatch.chdir(tmp_path)
    name = "data.json" if command[0] == "shift" else "data.jsonl"
    f = tmp_path / name
    f.write_text(json.dumps([{"prompt": "hi"}]) if name.endswith(".json") else
                 "".join(json.dumps({"prompt": f"Q{i}?", "completion": "A."}) + "\n" for i in range(20)))
    before = f.read_text()
    argv = [a.format(f=name, stem="data") for a in command]
    assert main(argv) == 2
    assert "is the input" in capsys.readouterr().err
    assert f.read_text() == before


def test_a_sentence_given_as_the_prompts_source_says_to_pass_a_list():
    """In Python a string names a dataset or file; a sentence there said only 'unknown dataset'."""
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match=r"unknown dataset 'Explain gravity\.'.*pass a list: \['Explain"):
        normalise_prompts("Explain gravity.")
    with pytest.raises(WorkbenchError) as e:
        normalise_prompts("instructons")
    assert "pass a list" not in str(e.value) and "did you mean 'instructions'" in str(e.value)
    assert normalise_prompts(["Explain gravity."]) == [[{"role": "user", "content": "Explain gravity."}]]


def test_a_raw_text_dataset_gives_its_eval_documents_openings():
    """A text dataset (the data of a `cpt` run) has no prompt column: it was refused ("cannot
    convert 'text' data to 'prompt_completion'"), so the quickstart's shift cell failed for cpt."""
    from workbench.data import load

    docs = load("stdlib-docs", format="text", split="eval", max_rows=3)["text"]
    prompts = normalise_prompts("stdlib-docs", max_prompts=3)
    assert [p[0]["content"] for p in prompts] == [" ".join(d.split()[:16]) for d in docs]
    assert all(len(p[0]["content"].split()) <= 16 for p in prompts)
    with pytest.raises(WorkbenchError, match="unknown dataset 'stdlib-dcos'"):
        normalise_prompts("stdlib-dcos")
