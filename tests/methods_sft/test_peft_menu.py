"""Every PEFT type builds and trains 2 steps on tiny-llama with the right trainable count;
nonsensical method × PEFT pairs fail before a run directory exists."""
import pytest
from sft_helpers import tiny_config

from workbench import TrainConfig, train
from workbench.errors import WorkbenchError
from workbench.peft_menu import build_peft_config, list_peft

ALL = ["full", "top-k-layers", "lora", "dora", "rslora", "pissa", "olora", "corda", "eva", "lora-b-only",
       "ia3", "loha", "lokr", "vera", "prompt-tuning", "prefix-tuning", "p-tuning"]


def test_menu_lists_every_type():
    assert {p.name for p in list_peft()} == set(ALL)


def _two_steps(tmp_path, peft):
    cfg = tiny_config(tmp_path, "sft", peft, max_steps=2, max_rows=8, learning_rate=1e-2)
    r = train(cfg)
    assert r.status == "completed" and r.summary["steps"] == 2
    assert r.summary["train_loss"] is not None
    s = r.summary
    assert 0 < s["trainable_params"] <= s["total_params"]
    assert s["trainable_share"] == pytest.approx(s["trainable_params"] / s["total_params"], abs=1e-6)
    return s


@pytest.mark.parametrize("peft", ALL)
def test_peft_type_trains_two_steps(tmp_path, peft):
    s = _two_steps(tmp_path, peft)
    if peft == "full":
        assert s["trainable_share"] == 1.0
    else:
        assert s["trainable_share"] < 0.05


def test_trainable_counts_match_the_adapters():
    """LoRA B-only trains exactly the B matrices; top-k-layers exactly the top blocks + final norm."""
    from peft import get_peft_model

    from workbench.models import load_model
    from workbench.peft_menu import post_init, transformer_blocks

    model, _ = load_model("tiny-llama", device="cpu")
    peft_model = get_peft_model(model, build_peft_config("lora-b-only", {}))
    post_init("lora-b-only", peft_model, {})
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_B." in n for n in trainable)
    assert {n.replace("lora_B", "lora_A") for n in trainable} <= {n for n, _ in peft_model.named_parameters()}

    model, _ = load_model("tiny-llama", device="cpu")
    post_init("top-k-layers", model, {"k": 1})
    top = transformer_blocks(model)[-1]
    expected = sum(p.numel() for p in top.parameters()) + sum(p.numel() for p in model.model.norm.parameters())
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected


def test_bad_peft_knobs_are_one_line_errors():
    with pytest.raises(WorkbenchError, match="peft.top-k-layers key 'kk'"):
        build_peft_config("top-k-layers", {"kk": 1})
    with pytest.raises(WorkbenchError, match="peft.lora.r"):
        build_peft_config("lora", {"r": "big"})
    cfg = build_peft_config("pissa", {"init_lora_weights": "pissa_niter_2"})
    assert cfg.init_lora_weights == "pissa_niter_2"
    assert build_peft_config("corda", {"corda_config": {"corda_method": "kpm"}}).corda_config.corda_method == "kpm"


def test_nonsensical_pair_fails_before_a_run_dir(tmp_path):
    cfg = TrainConfig(model="tiny-llama", dataset="instructions", method="hft", peft="lora",
                      max_steps=2, run_dir=str(tmp_path / "never"))
    with pytest.raises(WorkbenchError) as e:
        train(cfg)
    assert "'hft'" in str(e.value) and "'lora'" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "never").exists()


def test_cli_nonsensical_pair_exits_2_with_one_line(tmp_path, capsys):
    from workbench.cli.main import main

    code = main(["train", "--model", "tiny-llama", "--method", "hft", "--peft", "prompt-tuning",
                 "--run-dir", str(tmp_path / "never")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "hft" in err and "prompt-tuning" in err
    assert not (tmp_path / "never").exists()
