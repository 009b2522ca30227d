"""End to end from the CLI on two real tiny runs: `workbench merge` → `workbench shift`
on the merged run → `workbench export` (safetensors and GGUF), each export read back
with plain transformers and compared with the run's logits."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from workbench.cli.main import main
from workbench.errors import WorkbenchError


def test_merge_shift_export_from_the_cli(runs, logits, logit_ids, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = tmp_path / "merged"
    assert main(["merge", str(runs["a"]), str(runs["b"]), "--method", "ties", "--density", "0.5",
                 "--weights", "0.6,0.4", "--out", str(merged)]) == 0
    assert f"→ {merged}" in capsys.readouterr().out
    cfg = json.loads((merged / "config.json").read_text())
    assert cfg["merge"]["weights"] == [0.6, 0.4] and cfg["merge"]["knobs"]["density"] == 0.5

    report = tmp_path / "shift.html"
    assert main(["shift", "--base", "tiny-llama", "--tuned", str(merged), "--prompts", "instructions",
                 "--max-prompts", "2", "--max-new-tokens", "4", "--out", str(report)]) == 0
    stats = json.loads(report.with_suffix(".json").read_text())
    assert stats["n_tokens"] > 0 and report.is_file()

    exported = tmp_path / "export"
    assert main(["export", str(merged), "--out", str(exported)]) == 0
    assert "max |Δlogit|" in capsys.readouterr().out
    assert not (exported / "adapter_config.json").exists()            # the adapter is merged into the weights
    assert (exported / "chat_template.jinja").is_file() or "chat_template" in (
        exported / "tokenizer_config.json").read_text()
    plain = AutoModelForCausalLM.from_pretrained(str(exported), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(exported))
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)

    with torch.no_grad():
        got = plain(input_ids=torch.tensor(logit_ids)).logits
    assert torch.allclose(got, logits(merged), atol=1e-5), (got - logits(merged)).abs().max()
    recorded = json.loads((exported / "export.json").read_text())
    assert recorded["max_abs_logit_diff"] <= recorded["tolerance"] == 5e-4

    # A second export into the now non-empty folder: one line, exit 2, the folder untouched.
    before = sorted(p.name for p in exported.iterdir())
    assert main(["export", str(merged), "--out", str(exported)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in exported.iterdir()) == before


def test_gguf_round_trip_on_a_llama_run(runs, logits, logit_ids, tmp_path):
    """tiny-llama is llama-architecture: its LoRA run exported as F32 GGUF and read back by
    transformers' own GGUF loader (gguf_file=) gives the run's logits. (Reading a GGUF with
    a 49k-token vocabulary costs transformers ~10 s per pass, so the test compares the model
    the export itself read back, once, instead of reading the file a second time.)"""

    from workbench.merging.export import export_run

    out = tmp_path / "gguf"
    result = export_run(runs["a"], out, "gguf")
    assert [p.name for p in out.glob("*.gguf")] == [result.file.name] and result.file.parent == out
    model = result.reloaded
    assert model.config.model_type == "llama" and model.config.tie_word_embeddings
    assert model.config.num_key_value_heads == 2  # grouped-query attention: k's permutation uses 2 heads
    assert not hasattr(model, "peft_config")       # plain transformers, adapter merged in
    with torch.no_grad():
        got = model(input_ids=torch.tensor(logit_ids)).logits
    diff = (got - logits(runs["a"])).abs().max().item()
    assert diff < 1e-4, diff
    recorded = json.loads((out / "export.json").read_text())
    assert recorded["format"] == "gguf" and recorded["dtype"] == "f32" and recorded["max_abs_logit_diff"] < 1e-4

    # The file is a model for every command (--model x.gguf: it was "a file, not a model
    # directory"): converted once into the model cache, as the built-ins are.
    import shutil

    from workbench.models import load_model, resolve

    converted = Path(resolve(str(result.file)))
    try:
        assert converted.parent.name == "gguf" and resolve(str(result.file)) == str(converted)
        with torch.no_grad():
            again = load_model(str(result.file), device="cpu")[0](input_ids=torch.tensor(logit_ids)).logits
        assert (again - logits(runs["a"])).abs().max().item() < 1e-4
    finally:
        shutil.rmtree(converted, ignore_errors=True)  # the user's model cache: leave nothing there
    # A file exported again converts again and replaces its older conversion (not others').
    from workbench.models.registry import drop_older_conversions

    for name in ("run-f32-aaaa1111-0000aaaa", "run-f32-aaaa1111-1111bbbb", "run-f32-bbbb2222-0000aaaa",
                 "other-aaaa1111-0000aaaa"):
        (tmp_path / "cache" / name).mkdir(parents=True)
    dropped = drop_older_conversions(tmp_path / "cache" / "run-f32-aaaa1111-1111bbbb")
    assert [d.name for d in dropped] == ["run-f32-aaaa1111-0000aaaa"]
    assert sorted(d.name for d in (tmp_path / "cache").iterdir()) == [
        "other-aaaa1111-0000aaaa", "run-f32-aaaa1111-1111bbbb", "run-f32-bbbb2222-0000aaaa"]
    junk = tmp_path / "junk.gguf"
    junk.write_text("not a gguf")
    with pytest.raises(WorkbenchError, match="transformers cannot load this GGUF file"):
        resolve(str(junk))


def test_export_refuses_bad_input_before_writing(runs, tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["export", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse choices: one line, exit 2
        main(["export", str(runs["a"]), "--out", str(out), "--format", "onnx"])
    assert e.value.code == 2 and "invalid choice: 'onnx'" in capsys.readouterr().err
    from workbench.merging.export import export_run

    with pytest.raises(WorkbenchError, match="unknown GGUF dtype 'q4'"):
        export_run(runs["a"], out, "gguf", dtype="q4")
    # a GGUF-only knob on a safetensors export, or a tolerance no export can meet, is refused up front
    if Path("/proc/self").is_dir():  # writable by the permission check, yet no folder can be made there
        for argv in (["export", str(runs["a"])], ["merge", str(runs["a"]), str(runs["b"])]):
            assert main([*argv, "--out", "/proc/wb-out"]) == 2
            err = capsys.readouterr().err.strip()
            assert err.endswith("--out /proc/wb-out: cannot create a folder in /proc (No such file or directory)"), err
    for argv, match in [(["--dtype", "f16"], "--dtype f16 is a GGUF tensor type"),
                        (["--tolerance", "-1"], "--tolerance must be a positive number"),
                        (["--tolerance", "nan"], "--tolerance must be a positive number")]:
        assert main(["export", str(runs["a"]), "--out", str(out), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert match in err and len(err.splitlines()) == 1, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_merge_export_and_eval_refuse_an_out_inside_a_run(runs, tmp_path, capsys):
    """`--out RUN/final/x` (or under checkpoints/, eval/) was accepted by merge, export and
    eval, which wrote their results among the run's own files; every other command refused it."""
    import shutil

    run = Path(shutil.copytree(runs["a"], tmp_path / "run"))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    (run / "eval").mkdir()
    for entry in ("final/merged", "checkpoints/x", "eval", "eval/x"):
        out = str(run / entry)
        for argv in (["merge", str(run), str(runs["b"]), "--out", out],
                     ["export", str(run), "--out", out],
                     ["eval", "tiny-llama", "--tasks", "wb_arithmetic", "--limit", "1", "--out", out]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and f"--out {out} is the run {run}'s own {entry.split('/')[0]}" in err \
                and "loses the run's data" in err, (argv, err)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert [p.name for p in (run / "eval").iterdir()] == []
