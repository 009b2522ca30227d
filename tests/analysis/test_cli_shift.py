"""`workbench shift` end to end on a run directory holding full weights."""
import copy
import json

import pytest
import torch

from workbench.cli.main import main


@pytest.fixture
def full_run(tiny, tmp_path):
    """A full fine-tuning run dir: the tiny model with one MLP perturbed, saved whole."""
    model, tok = tiny
    m = copy.deepcopy(model)
    torch.manual_seed(2)
    with torch.no_grad():
        m.model.layers[1].mlp.down_proj.weight.add_(0.5 * torch.randn_like(m.model.layers[1].mlp.down_proj.weight))
    run = tmp_path / "run-full"
    m.save_pretrained(run / "final")
    tok.save_pretrained(run / "final")
    (run / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "sft"}))
    return run


def test_cli_writes_report_and_stats(full_run, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of France?\n\nName three colours.\nSay hi.\n")
    out, stats_path = tmp_path / "out" / "report.html", tmp_path / "out" / "stats.json"
    rc = main(["shift", "--base", "tiny-llama", "--tuned", str(full_run), "--prompts", str(prompts),
               "--max-prompts", "2", "--max-new-tokens", "5",  # default precision: fp32
               "--out", str(out), "--json", str(stats_path)])
    assert rc == 0
    stats = json.loads(stats_path.read_text())
    assert stats["n_prompts"] == 2 and stats["n_tokens"] == 10
    # fp32 by default on every machine, so a reader reproduces the split (bf16 changes the decode)
    assert (stats["settings"]["precision"], stats["settings"]["precision_resolved"]) == ("fp32", "fp32")
    assert sum(stats[k] for k in ("unshifted", "marginal", "shifted")) == pytest.approx(1.0)
    assert stats["mean_kl"] > 0  # the perturbed MLP really moved the distribution
    assert isinstance(stats["top_shifted"], list) and stats["tokens_per_s"] > 0
    html = out.read_text()
    assert html.count('class="tds-tok tds-') == 10 and "unshifted" in html
    assert "unshifted" in capsys.readouterr().out


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    rc = main(["shift", "--base", "tiny-llama", "--tuned", "no-such-model", "--prompts", "x.txt",
               "--out", str(tmp_path / "r.html")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no-such-model" in err and len(err.splitlines()) == 1


def test_cli_takes_a_sentence_as_the_prompt_and_refuses_a_mistyped_dataset(full_run, tmp_path, capsys):
    """As generate and chat do, a sentence is the prompt itself (it was "unknown dataset"); one
    word is still a dataset or file name, so a typo is an error naming the dataset meant."""
    out = tmp_path / "r.html"
    argv = ["shift", "--base", "tiny-llama", "--tuned", str(full_run), "--max-new-tokens", "3", "--out", str(out)]
    assert main([*argv, "--prompts", "Name three colours."]) == 0
    stats = json.loads(out.with_suffix(".json").read_text())
    assert stats["n_prompts"] == 1 and "Name three colours." in out.read_text()
    capsys.readouterr()
    assert main([*argv, "--prompts", "instructons"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown dataset 'instructons' (did you mean 'instructions'?)" in err
    assert main(["generate", "--model", "tiny-llama", "--prompts", "instructons"]) == 2  # was decoded as a prompt
    assert "(did you mean 'instructions'?)" in capsys.readouterr().err
