"""What a careless or hostile user types: every case gives one line on stderr naming the
thing that is wrong, exit 2, no traceback, and nothing left on disk. The commands run
in-process through `workbench.cli.main.main` (tiny-llama only)."""
from __future__ import annotations

import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from workbench.cli.main import build_parser, main
from workbench.config import TrainConfig
from workbench.errors import WorkbenchError

# ---------------------------------------------------------------- helpers

def one_line_error(capsys, argv, *needles):
    """Run the CLI; assert exit 2 with exactly one stderr line holding every needle."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tree(path):
    """Every path under `path` (what a command left behind)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (a FIFO opened for reading blocks forever)."""
    def boom(*_):
        raise TimeoutError(f"still blocked after {seconds} s")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_gpu(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


# ---------------------------------------------------------------- TrainConfig.validate

BAD_VALUES = [
    ("learning_rate", float("nan"), "learning_rate must be a finite positive number, got nan"),
    ("learning_rate", float("inf"), "learning_rate must be a finite positive number"),
    ("learning_rate", -1e-4, "learning_rate must be a finite positive number, got -0.0001"),
    ("learning_rate", 0.0, "learning_rate must be a finite positive number"),
    ("warmup_ratio", -0.1, "warmup_ratio must be a finite number >= 0"),
    ("warmup_ratio", float("nan"), "warmup_ratio must be a finite number >= 0"),
    ("lr_scheduler", "linearr", "unknown lr_scheduler 'linearr' (did you mean 'linear'?); known: constant"),
    ("max_steps", 0, "max_steps must be an integer >= 1, got 0"),
    ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("grad_accum", -2, "grad_accum must be an integer >= 1"),
    ("max_length", 0, "max_length must be an integer >= 1"),
    ("logging_steps", 0, "logging_steps must be an integer >= 1, got 0"),
    ("eval_steps", 0, "eval_steps must be an integer >= 1, got 0"),
    ("save_steps", 0, "save_steps must be an integer >= 1, got 0"),
    ("sample_prompts", -1, "sample_prompts must be an integer >= 0, got -1"),
    ("sample_max_new_tokens", -5, "sample_max_new_tokens must be an integer >= 0"),
    ("eval_rows", -1, "eval_rows must be an integer >= 0"),
    ("max_rows", 0, "max_rows must be an integer >= 1"),
    ("precision", "fp8", "precision must be auto, fp32 or bf16, got 'fp8'"),
    ("on_error", "ignore", "on_error must be raise or skip, got 'ignore'"),
    ("device", "tpu", "device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    ("device", "cuda", "device 'cuda' is not available"),
    ("device", "cuda:1", "device 'cuda:1' is not available"),
    # a negative seed was a ValueError traceback from numpy after the run directory existed
    ("seed", -5, "seed must be an integer >= 0, got -5"),
    ("seed", 2**32, "seed must be below 2**32"),
    ("dataset", ["instructions"], "dataset must be a built-in name, a file or a hub id"),
    ("dataset", "", "dataset must be a built-in name, a file or a hub id, got ''"),
]


@pytest.mark.parametrize("field,value,message", BAD_VALUES, ids=[f"{f}={v}" for f, v, _ in BAD_VALUES])
def test_validate_names_the_field(no_gpu, field, value, message):
    cfg = TrainConfig()
    setattr(cfg, field, value)
    with pytest.raises(WorkbenchError) as e:
        cfg.validate()
    assert message in str(e.value) and len(str(e.value).splitlines()) == 1


def test_validate_accepts_the_defaults_and_edge_values():
    assert TrainConfig().validate() == TrainConfig()
    edge = TrainConfig(warmup_ratio=5, sample_prompts=0, sample_max_new_tokens=0, eval_rows=0,
                       max_rows=1, precision="bf16", device="cpu", on_error="skip", lr_scheduler="cosine")
    edge.validate()


def test_numbers_read_as_people_write_them():
    """`1e-3` is a float and `1e3` a count (PyYAML's YAML 1.1 read both as strings: the learning rate
    only passed through a string-to-float fallback, and a count was refused)."""
    cfg = TrainConfig()
    cfg.apply_flag("max_steps", "1e3")
    cfg.apply_flag("learning_rate", "1e-3")
    cfg.apply_overrides(["eval_steps=2E2", "peft.r=16"])
    assert (cfg.max_steps, cfg.learning_rate, cfg.eval_steps, cfg.peft_args["r"]) == (1000, 1e-3, 200, 16)
    assert type(cfg.max_steps) is int and type(cfg.eval_steps) is int
    for flag, raw in (("max_steps", "2.5"), ("max_steps", "1e400")):
        with pytest.raises(WorkbenchError, match="--max-steps: expected an integer"):
            cfg.apply_flag(flag, raw)


@pytest.mark.parametrize("ratio,max_steps,warns", [(50, 3, True), (0.999, 3, True), (3, 3, True),
                                                    (0.5, 3, False), (2, 3, False), (0.0, 1, False)])
def test_a_warmup_as_long_as_the_run_warns(ratio, max_steps, warns):
    import warnings

    from workbench.config import ConfigWarning

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        TrainConfig(warmup_ratio=ratio, max_steps=max_steps).validate()
    ours = [str(w.message) for w in seen if w.category is ConfigWarning]
    assert bool(ours) == warns, ours
    assert not ours or f"not fewer than max_steps={max_steps}: the learning rate never reaches" in ours[0]


@pytest.mark.parametrize("flags,key,hint", [
    ([], "r", "(a knob of peft 'lora': set it as peft.r)"),
    (["--peft", "top-k-layers"], "k", "(a knob of peft 'top-k-layers': set it as peft.k)"),
    (["--method", "dpo"], "beta", "(a knob of method 'dpo': set it as method.beta)"),
    ([], "gradient_accumulation_steps", "(the workbench calls it 'grad_accum')"),
    ([], "learnig_rate", "(did you mean 'learning_rate'?)"),
    ([], "method.betta", None),
])
def test_an_unknown_set_key_says_where_it_belongs(capsys, tmp_path, flags, key, hint):
    run = tmp_path / "run"
    argv = ["train", "--model", "tiny-llama", "--peft", "lora", *flags, "--set", f"{key}=1", "--run-dir", str(run)]
    if key == "method.betta":
        argv[argv.index("--peft"):argv.index("--peft")] = ["--method", "dpo", "--dataset", "preferences"]
        hint = "unknown method.dpo key 'betta' (did you mean 'beta'?)"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and hint in err[0] and not run.exists(), err


def test_on_error_is_a_train_flag_and_flag_errors_name_the_flag():
    args = build_parser().parse_args(["train", "--on-error", "skip"])
    assert args.on_error == "skip"
    cfg = TrainConfig()
    cfg.apply_flag("on_error", "skip")
    assert cfg.on_error == "skip"
    with pytest.raises(WorkbenchError, match=r"^--learning-rate: expected a number, got 'abc'$"):
        cfg.apply_flag("learning_rate", "abc")


# ---------------------------------------------------------------- workbench train: checked before the disk

TRAIN = ["train", "--model", "tiny-llama", "--dataset", "instructions", "--max-steps", "1",
         "--eval-rows", "0", "--sample-prompts", "0", "--quiet"]

TRAIN_FLAGS = [
    (["--learning-rate", "nan"], "learning_rate must be a finite positive number, got nan"),
    (["--learning-rate", "-1"], "learning_rate"),
    (["--lr-scheduler", "bogus"], "lr_scheduler 'bogus'"),
    (["--logging-steps", "0"], "logging_steps"),
    (["--warmup-ratio", "-0.5"], "warmup_ratio"),
    (["--eval-steps", "0"], "eval_steps"),
    (["--save-steps", "0"], "save_steps"),
    (["--sample-prompts", "-1"], "sample_prompts"),
    (["--eval-rows", "-1"], "eval_rows"),
    (["--precision", "fp8"], "precision"),
    (["--device", "tpu"], "device"),
    (["--device", "cuda"], "device 'cuda' is not available"),
    (["--on-error", "ignore"], "on_error"),
    (["--set", "seed=[1"], "--set: seed: expected an integer, got '[1'"),  # not YAML: a traceback before
]


@pytest.mark.parametrize("flags,needle", TRAIN_FLAGS, ids=[" ".join(f) for f, _ in TRAIN_FLAGS])
def test_train_refuses_bad_values_before_the_run_directory(in_tmp, capsys, no_gpu, flags, needle):
    run = in_tmp / "run"
    one_line_error(capsys, TRAIN + ["--run-dir", run] + flags, needle)
    assert not run.exists() and tree(in_tmp / "runs") == []


def _model_dir(path, config=None, weights=True):
    path.mkdir(parents=True)
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    if weights:
        (path / "model.safetensors").write_bytes(b"\0" * 8)
    return path


def test_train_refuses_bad_models_before_the_run_directory(in_tmp, capsys):
    not_model = _model_dir(in_tmp / "empty-dir", weights=False)
    custom = _model_dir(in_tmp / "custom", {"model_type": "my_secret_arch", "auto_map": {
        "AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XForCausalLM"}})
    for model, needle in [(not_model, "is not a model: no config.json"),
                          ("someone/not-cached-model", "not in the local Hugging Face cache and the hub is offline"),
                          (custom, "needs custom code")]:
        run = in_tmp / "run"
        line = one_line_error(capsys, TRAIN + ["--run-dir", run, "--model", model], needle)
        assert str(model) in line
        assert not run.exists() and tree(in_tmp / "runs") == []


@pytest.mark.slow
@pytest.mark.parametrize("method,dataset", [("sft", "instructions"), ("dpo", "preferences")])
def test_chat_data_on_a_model_without_a_chat_template_is_one_line(in_tmp, capsys, method, dataset):
    # gemma3-270m (a base model) has no chat template: SFT was a failed run with transformers'
    # paragraph, DPO a ValueError traceback from the truncation check
    run = in_tmp / "run"
    one_line_error(capsys, ["train", "--model", "gemma3-270m", "--dataset", dataset, "--method", method,
                            "--max-steps", "1", "--run-dir", run], "'gemma3-270m' has no chat template",
                   f"dataset '{dataset}' holds chat messages")
    assert not run.exists()


def test_the_workbenchs_own_warnings_are_one_line_on_the_command_line(in_tmp, capsys):
    # was Python's "/…/engine.py:91: TruncationWarning: …" header plus the source line under it
    rc = main(["train", "--model", "tiny-llama", "--dataset", "instructions", "--max-length", "40", "--max-steps", "1",
               "--eval-rows", "0", "--sample-prompts", "0", "--quiet", "--run-dir", str(in_tmp / "run")])
    err = capsys.readouterr().err
    warned = [ln for ln in err.splitlines() if "warning" in ln.lower()]
    assert rc == 0 and len(warned) == 1, err
    assert warned[0].startswith("workbench train: warning: ") and "rows have a prompt of max_length=40" in warned[0]
    assert "engine.py" not in err and "TruncationWarning" not in err


def test_train_refuses_python_rewards_that_are_missing_or_do_not_compile(in_tmp, capsys):
    broken = in_tmp / "broken_reward.py"
    broken.write_text("def score(prompts, completions, **kw)\n    return [0.0]\n")
    for spec, needle in [(f"{in_tmp}/missing.py:score", "missing.py does not exist"),
                         (f"{broken}:score", "does not compile")]:
        run = in_tmp / "run"
        one_line_error(capsys, TRAIN + ["--run-dir", run, "--method", "onpolicy", "--dataset", "arithmetic",
                                        "--set", "method.rewards={python: {function: '%s'}}" % spec], needle)
        assert not run.exists() and tree(in_tmp / "runs") == []


def test_train_refuses_a_fifo_dataset_instead_of_hanging(in_tmp, capsys):
    fifo = in_tmp / "rows.jsonl"
    os.mkfifo(fifo)
    run = in_tmp / "run"
    with deadline(60):
        one_line_error(capsys, TRAIN + ["--run-dir", run, "--dataset", fifo], "rows.jsonl", "not a regular file")
    assert not run.exists()


# ---------------------------------------------------------------- models

def test_resolve_local_directories(tmp_path):
    from workbench.models import ensure_cached, resolve

    with pytest.raises(WorkbenchError, match="no config.json"):
        resolve(str(_model_dir(tmp_path / "a", weights=False)))
    with pytest.raises(WorkbenchError, match="has config.json but no weights"):
        resolve(str(_model_dir(tmp_path / "b", {"model_type": "llama"}, weights=False)))
    with pytest.raises(WorkbenchError, match=r"cannot read config.json \(JSONDecodeError\)"):
        bad = _model_dir(tmp_path / "c")
        (bad / "config.json").write_text("{not json")
        resolve(str(bad))
    with pytest.raises(WorkbenchError, match="model_type 'no_such_arch' is not known to transformers"):
        resolve(str(_model_dir(tmp_path / "d", {"model_type": "no_such_arch"})))
    with pytest.raises(WorkbenchError, match="is a file, not a model directory"):
        (tmp_path / "model.bin").write_bytes(b"weights")
        resolve(str(tmp_path / "model.bin"))
    with pytest.raises(WorkbenchError, match="transformers cannot load this GGUF file"):  # truncated after its magic
        (tmp_path / "model.gguf").write_bytes(b"GGUF")
        resolve(str(tmp_path / "model.gguf"))
    run = _model_dir(tmp_path / "run", {"model": "tiny-llama", "method": "sft"}, weights=False)
    with pytest.raises(WorkbenchError, match="run directory with no trained weights yet"):
        resolve(str(run))
    (run / "final").mkdir()
    with pytest.raises(WorkbenchError, match="run directory, not a model; its trained weights are in"):
        resolve(str(run))
    # a known architecture with an auto_map loads with transformers' own code: fine
    known = _model_dir(tmp_path / "e", {"model_type": "llama", "auto_map": {"AutoConfig": "x.Y"}})
    assert resolve(str(known)) == str(known)
    tiny = ensure_cached("tiny-llama")
    assert resolve(tiny) == tiny


def _fake_hub_cache(root, repo_id, config):
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snap / "config.json").write_text(json.dumps(config))
    return root


def test_resolve_hub_ids_from_the_cache_offline(tmp_path, monkeypatch):
    from workbench.models import resolve

    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "org/plain", {"model_type": "llama"})
    _fake_hub_cache(cache, "org/custom", {"model_type": "phi_custom", "auto_map": {"AutoConfig": "c.C"}})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert resolve("org/plain") == "org/plain"
    with pytest.raises(WorkbenchError, match=r"model 'org/custom' needs custom code .*trust_remote_code=False"):
        resolve("org/custom")
    with pytest.raises(WorkbenchError,
                       match="'org/missing' is not in the local Hugging Face cache and the hub is offline"):
        resolve("org/missing")


def test_resolve_hub_id_when_the_hub_cannot_be_reached(tmp_path, monkeypatch):
    """Online but nothing answers: one line, no download attempted."""
    from workbench.models import registry

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "_hub_offline", lambda: False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with deadline(60), pytest.raises(WorkbenchError, match="hub is unreachable"):
        registry.resolve("org/unreachable-model")


def test_models_cli_lists_without_error(capsys):
    assert main(["models"]) == 0


# ---------------------------------------------------------------- datasets

def test_fifo_and_empty_datasets(in_tmp, capsys):
    from workbench.data import DataError, load

    fifo = in_tmp / "pipe.jsonl"
    os.mkfifo(fifo)
    with deadline(30):
        with pytest.raises(DataError, match="pipe.jsonl: not a regular file"):
            load(str(fifo))
        one_line_error(capsys, ["datasets", fifo], "pipe.jsonl", "not a regular file")
    empty = in_tmp / "empty.jsonl"
    empty.write_text("")
    one_line_error(capsys, ["datasets", empty], "empty.jsonl: file is empty")


# ---------------------------------------------------------------- select --out

def test_select_out_naming_a_folder_leaves_nothing(in_tmp, capsys):
    folder = in_tmp / "outdir"
    folder.mkdir()
    base = ["select", "--dataset", "instructions", "--strategy", "random", "--k", "2"]
    one_line_error(capsys, base + ["--out", folder], "--out", "outdir is a folder")
    assert tree(folder) == []
    blocker = in_tmp / "plain-file"
    blocker.write_text("x")
    one_line_error(capsys, base + ["--out", blocker / "chosen.jsonl"], "plain-file is a file, not a folder")
    assert blocker.read_text() == "x"
    # and the right call still works, leaving only its output
    assert main(base + ["--out", str(folder / "chosen.jsonl")]) == 0
    assert tree(folder) == ["chosen.jsonl"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: permissions cannot be tested")
def test_outputs_under_an_unwritable_folder(in_tmp, capsys):
    locked = in_tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        one_line_error(capsys, ["select", "--dataset", "instructions", "--strategy", "random", "--k", "2",
                                "--out", locked / "sub" / "chosen.jsonl"], "permission denied")
        from workbench.sweeps import TEMPLATES_DIR
        one_line_error(capsys, ["run", TEMPLATES_DIR / "train_run.ipynb", "-o", locked / "out"], "permission denied")
        assert tree(locked) == []
    finally:
        locked.chmod(0o700)


def test_select_write_failure_removes_its_temp_file(in_tmp, capsys, monkeypatch):
    import workbench.cli.select as sel_cli

    def fail(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(sel_cli.os, "replace", fail)
    out = in_tmp / "o" / "chosen.jsonl"
    one_line_error(capsys, ["select", "--dataset", "instructions", "--strategy", "random", "--k", "2",
                            "--out", out], "No space left on device")
    assert tree(in_tmp / "o") == []


# ---------------------------------------------------------------- YAML files, the runs listing

@pytest.mark.parametrize("content,needle", [
    ("", "the config file is empty"),
    ("# model: tiny-llama\n", "the config file is empty"),  # only comments: as empty
    (b"\x7fELF\x02\x01\x01\x00\xf0\x80", "not a text file"),
    # PyYAML kept the second value silently; the line and the key are named
    ("model: tiny-llama\nlearning_rate: 1e-3\nlearning_rate: 1e-4\n",
     "run.yaml line 3: not valid YAML (key 'learning_rate' is given twice)"),
    ("peft_args: {r: 8, r: 16}\n", "line 1: not valid YAML (key 'r' is given twice)"),
    ("model: [unclosed\n", "line 2: not valid YAML (expected ',' or ']'"),
], ids=["empty", "only-comments", "binary", "key-twice", "nested-key-twice", "unclosed"])
def test_train_config_file_that_holds_no_config(in_tmp, capsys, content, needle):
    # An empty run.yaml once started a default run (SmolLM2, 30 steps); a binary one raised a traceback.
    cfg = in_tmp / "run.yaml"
    cfg.write_bytes(content if isinstance(content, bytes) else content.encode())
    one_line_error(capsys, ["train", "--config", cfg, "--run-dir", in_tmp / "r"], "run.yaml", needle)
    one_line_error(capsys, ["sweep", cfg, "-o", in_tmp / "out"], "run.yaml")
    assert tree(in_tmp) == ["run.yaml"]


def test_a_folder_given_as_a_yaml_file_is_named_as_a_folder(in_tmp, capsys):
    (in_tmp / "configs").mkdir()
    one_line_error(capsys, ["train", "--config", in_tmp / "configs"], "configs is a folder")


def test_runs_listing_of_a_root_that_is_not_a_folder(in_tmp, capsys):
    # a typo in --root read as "no runs under ..." with exit 0
    one_line_error(capsys, ["runs", "--root", in_tmp / "runz"], "--root", "runz does not exist")
    (in_tmp / "notes.txt").write_text("x")
    one_line_error(capsys, ["runs", "--root", in_tmp / "notes.txt"], "notes.txt is a file, not a folder")
    (in_tmp / "runs").mkdir()  # an existing, empty folder is not an error
    assert main(["runs", "--root", str(in_tmp / "runs")]) == 0
    assert "no runs under" in capsys.readouterr().out


# ---------------------------------------------------------------- run / sweep

@pytest.mark.parametrize("content,needle", [
    ("this is not json", "not a notebook (not valid JSON"),
    ("[1, 2, 3]", "not a Jupyter notebook"),
    ('{"cells": "x", "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "not a valid notebook"),
], ids=["not-json", "json-list", "bad-cells"])
def test_run_corrupt_notebook(in_tmp, capsys, content, needle):
    nb = in_tmp / "broken.ipynb"
    nb.write_text(content)
    out = in_tmp / "out"
    one_line_error(capsys, ["run", nb, "-o", out], "broken.ipynb", needle)
    one_line_error(capsys, ["run", nb, "--list-parameters"], needle)
    assert not out.exists() and not (in_tmp / "runs").exists()


def test_run_output_under_a_file(in_tmp, capsys):
    from workbench.sweeps import TEMPLATES_DIR

    blocker = in_tmp / "blocker"
    blocker.write_text("x")
    one_line_error(capsys, ["run", TEMPLATES_DIR / "train_run.ipynb", "-o", blocker / "out"],
                   "-o/--output", "blocker is a file, not a folder")
    assert blocker.read_text() == "x"


def test_run_output_folder_holding_the_notebook_keeps_the_source(in_tmp, capsys):
    # `-o` naming the notebook's own folder wrote the executed copy over the source notebook
    from workbench.sweeps import TEMPLATES_DIR

    nb = in_tmp / "nbs" / "train_run.ipynb"
    nb.parent.mkdir()
    nb.write_bytes((TEMPLATES_DIR / "train_run.ipynb").read_bytes())
    before = nb.read_bytes()
    one_line_error(capsys, ["run", nb, "-o", in_tmp / "nbs" / ".." / "nbs", "-p", "model", "tiny-llama"],
                   "holds the notebook itself")
    assert nb.read_bytes() == before and tree(in_tmp) == ["nbs", "nbs/train_run.ipynb"]


@pytest.mark.parametrize("workers", ["-1", "0"])
def test_sweep_refuses_nonpositive_workers(in_tmp, capsys, workers):
    sweep = in_tmp / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"template": "train_run.ipynb", "parameters": {"model": "tiny-llama"},
                                     "grid": {"learning_rate": [1e-3]}}))
    out = in_tmp / "out"
    one_line_error(capsys, ["sweep", sweep, "-j", workers, "-o", out],
                   f"-j/--workers must be at least 1, got {workers}")
    assert not out.exists()


def test_sweep_output_under_a_file(in_tmp, capsys):
    sweep = in_tmp / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"template": "train_run.ipynb", "parameters": {"model": "tiny-llama"},
                                     "grid": {"learning_rate": [1e-3]}}))
    (in_tmp / "blocker").write_text("x")
    one_line_error(capsys, ["sweep", sweep, "-o", in_tmp / "blocker" / "out"], "blocker is a file")


# ---------------------------------------------------------------- shift

def test_shift_on_a_run_without_weights(in_tmp, capsys):
    run = in_tmp / "unfinished"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "sft", "peft": "lora"}))
    (run / "metrics.jsonl").write_text("")
    prompts = in_tmp / "p.txt"
    prompts.write_text("Say hi.\n")
    out = in_tmp / "report" / "r.html"
    one_line_error(capsys, ["shift", "--base", "tiny-llama", "--tuned", run, "--prompts", prompts,
                            "--max-new-tokens", "2", "--out", out], "unfinished",
                   "no trained weights (no final/ folder): it is still training")
    assert not (in_tmp / "report").exists()


def test_shift_checks_outputs_and_prompts_before_the_analysis(in_tmp, capsys):
    prompts = in_tmp / "p.txt"
    prompts.write_text("Say hi.\n")
    (in_tmp / "blocker").write_text("x")
    base = ["shift", "--base", "tiny-llama", "--tuned", "tiny-llama", "--max-new-tokens", "2"]
    one_line_error(capsys, base + ["--prompts", prompts, "--out", in_tmp / "blocker" / "r.html"],
                   "--out", "blocker is a file")
    (in_tmp / "adir").mkdir()
    one_line_error(capsys, base + ["--prompts", prompts, "--out", in_tmp / "adir"], "adir is a folder")
    one_line_error(capsys, base + ["--prompts", prompts, "--batch-size", "0"], "--batch-size")
    bad_json = in_tmp / "p.json"
    bad_json.write_text("[\"a\", oops]")
    one_line_error(capsys, base + ["--prompts", bad_json, "--out", in_tmp / "r.html"], "p.json", "not valid JSON")
    assert not (in_tmp / "r.html").exists()


def test_no_output_flag_writes_over_a_runs_own_files(in_tmp, capsys):
    """--out r/config.json (or r/final/…, r/metrics.jsonl) replaced the run's file after the work;
    now every command refuses a run's own entries up front, and a new file beside them is fine."""
    from workbench.runs.records import Kind, MetricsRecord
    from workbench.runs.run import Run
    from workbench.sweeps import TEMPLATES_DIR

    with Run.create(in_tmp / "r", {"model": "tiny-llama"}) as run:
        run.emit(MetricsRecord(1, Kind.TRAIN, {"loss": 1.0}))
        run.save_final(lambda d: (Path(d).mkdir(), (Path(d) / "adapter_config.json").write_text("{}")))
        run.finish(steps=1)
    before = {p: p.read_bytes() for p in (in_tmp / "r").rglob("*") if p.is_file()}
    select = ["select", "--dataset", "instructions", "--strategy", "random", "--k", "2"]
    shift = ["shift", "--base", "tiny-llama", "--tuned", "tiny-llama", "--prompts", "Say hi to me."]
    for argv, needle in [
        (select + ["--out", "r/config.json"], "--out r/config.json is the run"),
        (select + ["--out", "r/final/rows.jsonl"], "own final"),
        (["generate", "--model", "tiny-llama", "--prompts", "Say hi to me.", "--out", "r/samples.jsonl"], "--out"),
        (shift + ["--out", "r/summary.json"], "own summary.json"),
        (shift + ["--out", "report.html", "--json", "r/metrics.jsonl"], "--json r/metrics.jsonl"),
        (["check", TEMPLATES_DIR / "train_run.ipynb", "--junit", "r/config.json"], "--junit"),
        (["run", TEMPLATES_DIR / "train_run.ipynb", "-o", "r/checkpoints"], "-o/--output"),
    ]:
        one_line_error(capsys, argv, needle, "loses the run's data")
    assert {p: p.read_bytes() for p in (in_tmp / "r").rglob("*") if p.is_file()} == before
    assert main(select + ["--out", "r/rows.jsonl"]) == 0 and (in_tmp / "r" / "rows.jsonl").is_file()


# ---------------------------------------------------------------- any file-system error

def test_unforeseen_os_error_is_one_line(monkeypatch, capsys):
    import workbench.cli.models as models_cli

    def denied(args):
        raise PermissionError(13, "Permission denied", "/some/where/file.json")
    monkeypatch.setattr(models_cli, "run", denied)
    one_line_error(capsys, ["models"], "Permission denied: /some/where/file.json")


@pytest.mark.parametrize("command", ["datasets", "models"])
def test_a_reader_that_leaves_ends_the_command_quietly(command):
    """`workbench datasets | head -1`: the reader has gone when the listing is written. No
    'error: Broken pipe' line (nor Python's 'Exception ignored' at exit), and the status a
    shell gives a process ended by SIGPIPE."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        proc = subprocess.run([sys.executable, "-m", "workbench.cli.main", command], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")
