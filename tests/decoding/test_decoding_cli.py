"""`workbench generate` and `workbench chat`."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_generate_streams_and_writes_jsonl(tmp_path, capsys):
    out = tmp_path / "replies.jsonl"
    rc = main(["generate", "--model", "tiny-llama", "--strategy", "best_of_n", "--set", "n=3",
               "--set", "max_new_tokens=4", "--precision", "fp32", "--prompts", "Say hello.", "--out", str(out)])
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["prompt"] == "Say hello." and len(rows[0]["candidates"]) == 3
    assert rows[0]["output"] in capsys.readouterr().out


def test_generate_reads_a_prompt_file_in_batches(tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("One?\nTwo?\n\nThree?\n")
    out = tmp_path / "o.jsonl"
    rc = main(["generate", "--model", "urial:tiny-llama", "--set", "max_new_tokens=3", "--stream", "no",
               "--prompts", str(prompts), "--out", str(out)])
    assert rc == 0 and [json.loads(x)["prompt"] for x in out.read_text().splitlines()] == ["One?", "Two?", "Three?"]


@pytest.mark.parametrize("args,match", [
    (["--strategy", "nope"], "unknown decoding strategy 'nope'"),
    (["--set", "foo=1"], "unknown strategy key 'foo'"),
    (["--strategy", "best_of_n", "--set", "n=0"], "strategy.n must be >= 1"),
    (["--prompts", " "], "empty prompt"),
    # a mistyped path was decoded as the prompt "./data/p.jsonl"
    (["--prompts", "./data/p.jsonl"], "--prompts ./data/p.jsonl: no such file or directory"),
    (["--prompts", "prompts.txt"], "--prompts prompts.txt: no such file or directory"),
    (["--strategy", "best-of-n"], "unknown decoding strategy 'best-of-n' (did you mean 'best_of_n'?)"),
    (["--strategy", "proxy_tuning", "--set", "expert=tiny-llama"], "strategy.anti_expert is required"),
    (["--strategy", "proxy_tuning", "--set", "expert=tiny-llama", "--set", "anti_expert=no-such-model"],
     "no-such-model"),
])
def test_bad_input_is_one_line_and_exit_2(args, match, capsys):
    argv = ["generate", "--model", "tiny-llama", "--prompts", "Hi", *args]
    if "--prompts" in args:
        argv = ["generate", "--model", "tiny-llama", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_chat_reads_stdin_multi_turn(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\n\n/clear\nWhy?\n"))
    rc = main(["chat", "tiny-llama", "tiny-llama@lookback", "--set", "max_new_tokens=3", "--columns", "yes",
               "--precision", "fp32"])
    out = capsys.readouterr()
    assert rc == 0 and "2 turn(s) with 2 contestant(s)" in out.err
    assert out.out.count("[1] tiny-llama:") == 2 and out.out.count("[2] tiny-llama · lookback:") == 2
    assert "(conversation cleared)" in out.out and " | " in out.out


def test_chat_mistyped_command_is_not_sent_as_a_turn(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\n/help\n/exit\nnever read\n"))
    assert main(["chat", "tiny-llama", "--set", "max_new_tokens=2", "--precision", "fp32"]) == 0
    out = capsys.readouterr()
    assert "unknown command /help" in out.err and "1 turn(s)" in out.err
    assert "/help" not in out.out and "never read" not in out.out


def test_chat_bad_knob_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\n"))
    assert main(["chat", "tiny-llama@best_of_n", "--set", "epsilon=0.5"]) == 2
    assert "no contestant's strategy has this knob" in capsys.readouterr().err


@pytest.mark.slow
def test_chat_works_through_a_pipe():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "workbench.cli.main", "chat", "tiny-llama", "urial:tiny-llama",
                        "--max-new-tokens", "3"], input="Hi there\nAnd then?\n", capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("[2] urial:tiny-llama:") == 2


def test_mismatched_vocabularies_exit_2_with_one_line(tmp_path, other_vocab, capsys):
    model, tok = other_vocab
    model.save_pretrained(tmp_path / "other")
    tok.save_pretrained(tmp_path / "other")
    other = str(tmp_path / "other")
    rc = main(["generate", "--model", "tiny-llama", "--strategy", "proxy_tuning", "--set", f"expert={other}",
               "--set", f"anti_expert={other}", "--prompts", "Hi"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]   # (loading bars aside)
    assert rc == 2 and len(err) == 1 and "different vocabularies" in err[0], err
