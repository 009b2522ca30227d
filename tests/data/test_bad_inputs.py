"""Every kind of bad input gives a DataError whose lines name the file, the row or line, the
field and what was expected; on_error="skip" drops bad rows and says which."""
import json
import re

import pytest

from workbench.data import DataError, DataWarning, load, validate
from workbench.errors import UnknownNameError, WorkbenchError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pref(i, **over):
    return {"prompt": f"question {i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}", **over}


def test_data_error_is_a_workbench_error():
    assert issubclass(DataError, WorkbenchError)


def test_non_utf8_file_names_line(tmp_path):
    p = tmp_path / "latin.jsonl"
    p.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"latin\.jsonl line 2: not UTF-8"):
        load(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.jsonl: file is empty"):
        load(p)


def test_jsonl_line_that_is_not_json(tmp_path):
    p = tmp_path / "broken.jsonl"
    p.write_text('{"text": "a"}\n{"text": "b"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.jsonl line 3: not valid JSON"):
        load(p)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    p = tmp_path / "list.jsonl"
    p.write_text('{"text": "a"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"list\.jsonl line 2: expected a JSON object, got list"):
        load(p)


def test_csv_missing_column_for_requested_format(tmp_path):
    p = tmp_path / "pairs.csv"
    p.write_text("prompt,chosen\nq1,a1\nq2,a2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs\.csv: cannot tell the format from columns chosen, prompt"):
        load(p, format="preference")


def test_csv_short_row_names_missing_field(tmp_path):
    p = tmp_path / "pc.csv"
    p.write_text("prompt,completion\nq1,a1\nq2\nq3,a3\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        load(p)
    assert "pc.csv row 2: 'completion' is missing" in str(e.value)


def test_column_mapping_to_a_column_that_does_not_exist(tmp_path):
    p = tmp_path / "qa.csv"
    p.write_text("question,reply\nq,a\n", encoding="utf-8")
    with pytest.raises(DataError,
                       match=r"qa\.csv: no column 'response' to map to 'completion' \(columns: question, reply\)"):
        load(p, columns={"question": "prompt", "response": "completion"})


def test_every_bad_row_is_one_line_with_file_row_and_field(tmp_path):
    rows = [pref(i) for i in range(20)]
    rows[3]["chosen"] = ""
    rows[7]["rejected"] = [{"role": "assistant", "content": "   "}]
    rows[11]["prompt"] = [{"role": "robot", "content": "hi"}]
    del rows[16]["rejected"]
    rows[18]["rejected"] = [{"role": "assistant", "content": rows[18]["chosen"]}]  # same reply, another spelling
    p = write_jsonl(tmp_path / "prefs.jsonl", rows)
    with pytest.raises(DataError) as e:
        load(p, format="preference")
    lines = str(e.value).splitlines()
    assert lines[0] == "prefs.jsonl: 5 bad rows of 20"
    assert "prefs.jsonl row 19: 'chosen' and 'rejected' are the same response, so the pair prefers nothing" in lines
    assert "prefs.jsonl row 4: 'chosen' is empty" in lines
    assert "prefs.jsonl row 8: 'rejected'[0] content is empty" in lines
    assert "prefs.jsonl row 12: 'prompt'[0] has role 'robot'; expected one of system, user, assistant" in lines
    assert "prefs.jsonl row 17: 'rejected' is missing" in lines


def test_bad_rows_hint_names_the_cli_option_and_the_python_argument(tmp_path):
    rows = [pref(i) for i in range(5)]
    rows[2]["chosen"] = ""
    p = write_jsonl(tmp_path / "prefs.jsonl", rows)
    with pytest.raises(DataError) as e:
        load(p)
    hint = str(e.value).splitlines()[-1]
    assert "--on-error skip" in hint and "on_error='skip'" in hint


def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    import os
    import signal

    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    signal.alarm(30)  # opening a FIFO for reading would block forever: fail instead
    try:
        with pytest.raises(DataError, match=r"rows\.jsonl: not a regular file"):
            load(fifo)
        with pytest.raises(DataError, match="not a regular file"):
            validate(str(fifo))
    finally:
        signal.alarm(0)


def test_skip_drops_bad_rows_and_warns_which(tmp_path):
    rows = [pref(i) for i in range(20)]
    rows[3]["chosen"] = ""
    rows[16]["rejected"] = None
    p = write_jsonl(tmp_path / "prefs.jsonl", rows)
    with pytest.warns(DataWarning) as w:
        train = load(p, on_error="skip", seed=None)
        held = load(p, on_error="skip", split="eval", seed=None)
    text = str(w[0].message)
    assert text.startswith("prefs.jsonl: 2 skipped bad rows of 20")
    assert "row 4: 'chosen' is empty" in text and "row 17: 'rejected' is missing" in text
    kept = {r["prompt"][0]["content"] for r in train} | {r["prompt"][0]["content"] for r in held}
    assert len(kept) == 18 and "question 3?" not in kept and "question 16?" not in kept


def test_validate_reports_without_raising(tmp_path):
    rows = [pref(i) for i in range(5)]
    rows[2]["chosen"] = ""
    report = validate(write_jsonl(tmp_path / "p.jsonl", rows))
    assert not report.ok and report.bad_rows == [3] and report.format == "preference"
    assert "p.jsonl row 3: 'chosen' is empty" in report.summary()


def test_mixed_formats_are_reported_per_row(tmp_path):
    rows = [pref(i) for i in range(6)] + [{"prompt": "q", "completion": "a"}]
    p = write_jsonl(tmp_path / "mixed.jsonl", rows)
    with pytest.raises(DataError, match=r"mixed\.jsonl row 7: looks like 'prompt_completion' .* but the data "
                                        r"is 'preference': mixed formats"):
        load(p)


def test_unrecognisable_columns(tmp_path):
    p = write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "reply": "a"}])
    with pytest.raises(DataError, match=r"odd\.jsonl: cannot tell the format from columns question, reply"):
        load(p)


@pytest.mark.parametrize("row, message", [
    ({"prompt": "q", "completion": "a", "label": "maybe"}, "'label' is 'maybe'; expected true or false"),
    ({"prompt": "q", "responses": ["a", "b", "c"], "scores": [1, 2]}, "'scores' has 2 values but 'responses' has 3"),
    ({"prompt": "q", "responses": ["a"], "scores": [1]}, "'responses' must be a list of at least 2 responses"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "'messages' has no assistant turn"),
    ({"prompt": "q", "completion": [{"role": "user", "content": "a"}]},
     "'completion'[0] has role 'user'; expected 'assistant'"),
    ({"text": 42.5}, None),  # numbers are accepted as text
    ({"text": ["not", "a", "string"]}, "'text' is list; expected a string"),
    ({"prompt": "q", "answer": ""}, "'answer' is empty"),
])
def test_field_level_problems(tmp_path, row, message):
    p = write_jsonl(tmp_path / "one.jsonl", [row])
    report = validate(p)
    if message is None:
        assert report.ok
    else:
        assert report.problems == [f"one.jsonl row 1: {message}"]


def test_impossible_conversion_names_both_formats(tmp_path):
    p = write_jsonl(tmp_path / "t.jsonl", [{"text": "hello"}])
    with pytest.raises(DataError, match=r"cannot convert 'text' data to 'preference'"):
        load(p, format="preference")
    with pytest.raises(DataError, match=r"cannot convert 'prompt_completion' data to 'ranked'"):
        load("humaneval", format="ranked")


def test_bad_arguments(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown data format 'chat'"):
        load("instructions", format="chat")
    with pytest.raises(UnknownNameError, match="unknown dataset 'instructionz'"):
        load("instructionz")
    with pytest.raises(DataError, match="split must be one of train, eval"):
        load("instructions", split="test")
    with pytest.raises(DataError, match="on_error must be"):
        load("instructions", on_error="ignore")
    with pytest.raises(DataError, match="max_rows must be a positive integer"):
        load("instructions", max_rows=0)
    with pytest.raises(DataError, match=r"no such file or directory"):
        load(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match=r"data/train\.jsonl: no such file or directory"):
        load("data/train.jsonl")  # looks like org/name, but it is a missing file
    (tmp_path / "data.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.txt: unsupported file type '\.txt'"):
        load(tmp_path / "data.txt")
    with pytest.raises(DataError, match="not one written by datasets' save_to_disk"):
        load(tmp_path)


def test_hub_id_goes_to_load_dataset_and_fails_with_one_line(monkeypatch):
    # Offline here: the call is made and its failure comes back as one DataError line.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        load("someorg/some-dataset")
    assert re.match(r"hub dataset 'someorg/some-dataset' could not be loaded: \w+", str(e.value))
    assert "\n" not in str(e.value)
