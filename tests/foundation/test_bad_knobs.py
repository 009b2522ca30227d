"""Every registered method and PEFT type: one bad knob through `workbench train` exits 2
with one line on stderr that names the knob, and leaves no run directory (every check
runs before the disk). One table drives the test; the test enumerates the registries, so
a newly registered method or PEFT type without a table entry fails here.

The CLI runs in-process (`workbench.cli.main.main`, same argument parsing and error
handling as the console script) because ~40 subprocesses would spend minutes importing;
one case also runs as a real subprocess."""
import re
import subprocess
import sys

import pytest

from workbench.cli.main import main
from workbench.methods import get_method, list_methods
from workbench.peft_menu import list_peft

# A built-in dataset of each data shape, so that whatever order the engine checks things
# in, the only thing wrong with a command is the bad knob.
DATASET_FOR = {"prompt_completion": "instructions", "preference": "preferences", "unpaired": "feedback",
               "ranked": "rankings", "verifiable": "arithmetic", "text": "stdlib-docs"}

# method → [(bad knob, bad value, extra CLI arguments)]. A knob starting with "--" is a
# run-level flag checked against the method (MethodSpec.check), not a method knob.
METHOD_CASES = {
    "sft": [("loss_type", "bogus", [])],
    "cpt": [("group_by_length", "true", [])],  # with packing (the default): nothing left to group
    "dpo": [("beta", "-0.1", [])],
    "rpo": [("loss_weights", "1,x", [])],
    "ln-dpo": [("f_divergence_type", "sideways", [])],
    "dft": [("kl_direction", "sideways", [])],
    "anchored-sft": [("kl_coef", "-1", [])],
    "masked-thought": [("mask_rate", "1.5", [])],
    "hft": [("fraction", "2", ["--peft", "full"]), ("reselect_every", "-1", ["--peft", "full"])],
    "loss-reweighting": [("tau", "0", [])],
    "s3ft": [("max_new_tokens", "0", [])],
    "kto": [("desirable_weight", "-1", []), ("--batch-size", "1", [])],
    "bco": [("beta", "0", [])],
    "orpo": [("max_completion_length", "0", [])],
    "cpo": [("loss_type", "simpo2", [])],
    "simpo": [("cpo_alpha", "-1", [])],
    "asft": [("beta", "big", [])],
    "aft": [("boundary", "-1", [])],
    "lipo": [("precompute_ref_log_probs", "true", [])],
    "onpolicy": [("k", "1", [])],
    "onpolicy-dpo": [("objective", "sft", [])],
    "onpolicy-aft": [("temperature", "0", [])],
    "grpo": [("num_generations", "1", [])],
    "rloo": [("top_p", "1.5", [])],
}

# PEFT type → (bad knob, bad value); trained with plain sft.
PEFT_CASES = {
    "full": ("r", "8"),                       # full fine-tuning has no knobs at all
    "top-k-layers": ("k", "0"),
    "lora": ("r", "0"),
    "dora": ("r", "-4"),
    "rslora": ("lora_dropout", "1.5"),
    "pissa": ("r", "0"),
    "olora": ("r", "big"),
    "corda": ("r", "0"),
    "eva": ("lora_dropout", "-0.1"),
    "lora-b-only": ("r", "0"),
    "ia3": ("fan_in_fan_out", "maybe"),
    "loha": ("r", "0"),
    "lokr": ("rank_dropout", "2"),
    "vera": ("r", "0"),
    "prompt-tuning": ("num_virtual_tokens", "0"),
    "prefix-tuning": ("num_virtual_tokens", "-1"),
    "p-tuning": ("encoder_hidden_size", "0"),
}

METHODS = sorted(m.name for m in list_methods())
PEFTS = sorted(p.name for p in list_peft())


def _method_cases():
    for name in METHODS:
        for knob, value, extra in METHOD_CASES.get(name, [(None, None, [])]):
            yield pytest.param(name, knob, value, extra, id=f"{name}-{knob}")


def _train(tmp_path, capsys, args: list[str]):
    run_dir = tmp_path / "never"
    code = main(["train", "--model", "tiny-llama", "--max-steps", "2", "--quiet", "--run-dir", str(run_dir), *args])
    err = capsys.readouterr().err.strip()
    return code, err, run_dir


def _assert_refused(code, err, run_dir, needle: str):
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert re.search(needle, lines[0]), f"{needle!r} not in {lines[0]!r}"
    assert not run_dir.exists(), "a bad knob left a run directory behind"


@pytest.mark.parametrize("method,knob,value,extra", _method_cases())
def test_bad_method_knob_exits_2_before_the_disk(tmp_path, capsys, method, knob, value, extra):
    assert knob is not None, f"method {method!r} has no bad-knob case in METHOD_CASES: add one"
    args = ["--method", method, "--dataset", DATASET_FOR[get_method(method).data_format], *extra]
    if knob.startswith("--"):
        args += [knob, value]
        needle = re.escape(knob[2:].replace("-", "_"))
    else:
        args += ["--set", f"method.{knob}={value}"]
        needle = rf"method\.(?:{re.escape(method)}\.)?{re.escape(knob)}\b"
    _assert_refused(*_train(tmp_path, capsys, args), needle)


@pytest.mark.parametrize("peft", PEFTS)
def test_bad_peft_knob_exits_2_before_the_disk(tmp_path, capsys, peft):
    assert peft in PEFT_CASES, f"PEFT type {peft!r} has no bad-knob case in PEFT_CASES: add one"
    knob, value = PEFT_CASES[peft]
    args = ["--method", "sft", "--dataset", "instructions", "--peft", peft, "--set", f"peft.{knob}={value}"]
    needle = rf"peft\.(?:{re.escape(peft)}\.)?{re.escape(knob)}\b|peft key for '{re.escape(peft)}' '{re.escape(knob)}'"
    _assert_refused(*_train(tmp_path, capsys, args), needle)


def test_the_table_names_only_registered_types():
    assert set(METHOD_CASES) <= set(METHODS), set(METHOD_CASES) - set(METHODS)
    assert set(PEFT_CASES) <= set(PEFTS), set(PEFT_CASES) - set(PEFTS)


def test_the_console_command_itself(tmp_path):
    """The real `workbench train` process: exit 2, one stderr line, no directory."""
    run_dir = tmp_path / "never"
    proc = subprocess.run([sys.executable, "-m", "workbench.cli.main", "train", "--model", "tiny-llama",
                           "--method", "hft", "--peft", "full", "--max-steps", "2", "--run-dir", str(run_dir),
                           "--set", "method.fraction=2"], capture_output=True, text=True, timeout=300)
    _assert_refused(proc.returncode, proc.stderr.strip(), run_dir, r"method\.(?:hft\.)?fraction\b")


def test_top_k_above_the_models_blocks_is_refused_before_the_disk(tmp_path, capsys):
    """k is checked against the model's config.json (its block count), not after loading it."""
    args = ["--method", "sft", "--dataset", "instructions", "--peft", "top-k-layers", "--set", "peft.k=99"]
    _assert_refused(*_train(tmp_path, capsys, args), r"peft\.k must be between 1 and \d+ \(the model's blocks\)")
