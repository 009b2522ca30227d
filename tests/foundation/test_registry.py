import subprocess
import sys
import time

import pytest
import torch

from workbench.errors import UnknownNameError
from workbench.models import BUILTIN, list_models, load_model, resolve


def test_builtins_listed_with_kind_and_size():
    names = {m.name: m for m in list_models()}
    assert {"smollm2-135m-instruct", "gemma3-270m", "tiny-llama"} <= names.keys()
    assert names["smollm2-135m-instruct"].kind == "instruct"
    assert names["gemma3-270m"].kind == "base"


@pytest.mark.parametrize("name", ["tiny-llama", "smollm2-135m-instruct"])
def test_builtin_resolves_to_cached_safetensors(name):
    path = resolve(name)
    assert BUILTIN[name].cached
    assert any(p.suffix == ".safetensors" for p in __import__("pathlib").Path(path).iterdir())


@pytest.mark.slow
def test_gemma_resolves():
    model, tok = load_model("gemma3-270m")
    assert model.config.vocab_size > 200_000
    assert tok("hello")["input_ids"]


def test_cache_reuse_is_fast_and_model_works():
    resolve("smollm2-135m-instruct")  # converted once (first run on a machine: ~20 s)
    t = time.perf_counter()
    model, tok = load_model("smollm2-135m-instruct")
    elapsed = time.perf_counter() - t
    assert elapsed < 5, f"cached load took {elapsed:.1f}s"
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1]:])


def test_tiny_llama_shares_the_real_tokenizer():
    tiny, tiny_tok = load_model("tiny-llama")
    assert tiny.config.num_hidden_layers == 2
    assert sum(p.numel() for p in tiny.parameters()) < 5_000_000
    assert len(tiny_tok) == 49152


@pytest.mark.parametrize("bad", ["smollm2-135m", "no/such/model/path", "./missing-dir"])
def test_unknown_model_is_one_clear_error(bad):
    with pytest.raises(UnknownNameError, match="unknown model"):
        resolve(bad)


@pytest.mark.parametrize("bad,meant", [("smollm2-135m", "smollm2-135m-instruct"), ("gemma3", "gemma3-270m"),
                                       ("Tiny_Llama", "tiny-llama"), ("tiny-lama", "tiny-llama"),
                                       ("smol", "smollm2-135m-instruct"), ("tin", None), ("gpt2", None)])
def test_an_unknown_model_names_the_one_meant(bad, meant):
    with pytest.raises(UnknownNameError) as e:
        resolve(bad)
    hint = f"(did you mean {meant!r}?)"
    assert (hint in str(e.value)) if meant else "did you mean" not in str(e.value), str(e.value)


def test_cli_models_prepare_converts_and_refuses_unknown_names(capsys):
    from workbench.cli.main import main

    assert main(["models", "--prepare", "tiny-llama", "smollm2-135m-instruct"]) == 0
    assert capsys.readouterr().out.splitlines() == ["tiny-llama: cached", "smollm2-135m-instruct: cached"]
    assert main(["models", "--prepare", "tiny-llama", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown built-in model 'no-such-model'" in err and "gemma3-270m" in err


def test_cli_models_lists_cache_state():
    out = subprocess.run([sys.executable, "-m", "workbench.cli.main", "models"],
                         capture_output=True, text=True, check=True).stdout
    assert "smollm2-135m-instruct" in out and "tiny-llama" in out and "cached" in out


# ---- registries refuse a duplicate name ---------------------------------------------------
def test_method_registry_refuses_a_duplicate_name():
    import dataclasses
    import importlib

    from workbench.errors import WorkbenchError
    from workbench.methods import get_method, list_methods, register

    dpo = get_method("dpo")
    assert register(dpo) is dpo  # the same spec again: a no-op
    impostor = dataclasses.replace(get_method("sft"), name="dpo")
    with pytest.raises(WorkbenchError, match="'dpo' is already registered"):
        register(impostor)
    assert get_method("dpo") is dpo

    import workbench.methods.sft as sft_module

    importlib.reload(sft_module)  # re-importing a method module replaces its own entry
    names = [m.name for m in list_methods()]
    assert names.count("sft") == 1 and get_method("sft").config_cls is sft_module.SFTArgs


def test_peft_registry_refuses_a_duplicate_name():
    import dataclasses

    from workbench.errors import WorkbenchError
    from workbench.peft_menu import get_peft, register_peft

    lora = get_peft("lora")
    assert register_peft(lora) is lora
    with pytest.raises(WorkbenchError, match="'lora' is already registered"):
        register_peft(dataclasses.replace(get_peft("dora"), name="lora"))
    assert get_peft("lora") is lora


def test_selection_registry_refuses_a_duplicate_name():
    from workbench.errors import WorkbenchError
    from workbench.selection import get_strategy
    from workbench.selection.base import strategy

    spec = get_strategy("random")
    with pytest.raises(WorkbenchError, match="'random' is already registered"):
        strategy("random", spec.knobs, "another random")(lambda pool, k, rng, knobs: None)
    assert get_strategy("random") is spec
