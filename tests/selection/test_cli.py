import json
import re

from workbench.cli.main import main


def _write_pool(path, n=12):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"question {i}", "completion": "word " * (i + 1)}) + "\n")


def test_select_writes_rows_with_scores(tmp_path, capsys):
    src, out = tmp_path / "pool.jsonl", tmp_path / "out" / "chosen.jsonl"
    _write_pool(src)
    assert main(["select", "--dataset", str(src), "--strategy", "longest", "--k", "3",
                 "--set", "unit=words", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["_score"] for r in rows] == [12.0, 11.0, 10.0]
    assert re.search(r"longest: chose 3 of \d+ rows", capsys.readouterr().out)


def test_select_target_flag_and_errors(tmp_path, capsys):
    src, out = tmp_path / "pool.jsonl", tmp_path / "chosen.jsonl"
    _write_pool(src)
    assert main(["select", "--dataset", str(src), "--strategy", "dsir", "--fraction", "0.25",
                 "--target", str(src), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) >= 2
    assert main(["select", "--dataset", str(src), "--strategy", "longest", "--k", "3",
                 "--set", "colour=red", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "selection.longest key 'colour'" in err[0]
    assert main(["select", "--dataset", str(src), "--strategy", "longest", "--out", str(out)]) == 2


def test_set_of_a_flags_own_name_is_that_flag(tmp_path, capsys):
    """`--set seed=1` / `--set k=3` were a TypeError (select() got seed twice) or ignored."""
    src, out = tmp_path / "pool.jsonl", tmp_path / "chosen.jsonl"
    _write_pool(src)
    base = ["select", "--dataset", str(src), "--strategy", "random", "--out", str(out)]
    assert main(base + ["--set", "k=3", "--set", "seed=5"]) == 0
    by_set = out.read_text()
    assert len(by_set.splitlines()) == 3
    assert main(base + ["--k", "3", "--seed", "5"]) == 0 and out.read_text() == by_set
    capsys.readouterr()
    assert main(base + ["--k", "3", "--seed", "5", "--set", "seed=6"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--set seed=… and --seed both given; give --seed once") and len(err.splitlines()) == 1
