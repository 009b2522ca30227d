"""PEFT type name → PEFT's own config dataclass (which also drives the widget forms).

Every adapter here is PEFT's; the workbench only picks defaults that suit small chat
models and adds three things PEFT has no config for:
  * `full` and `top-k-layers` train the model's own weights (no adapter);
  * `post_init(model, args)` runs on the trainer's model before training (LoRA B-only
    freezes A; top-k-layers freezes the lower blocks);
  * `prepare(model, peft_config, tokenizer, dataset)` wraps the model before the trainer
    is built when the adapter's initialisation needs calibration data (CorDA, EVA).

Every knob is checked by `build_peft_config` (PEFT's own config classes, or our knobs
dataclass's `__post_init__`), which the engine calls before the run directory exists;
only what needs the loaded model (top-k-layers' k against the model's block count) is
checked in `post_init`. New types join with `register_peft`, which refuses a taken name.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import dataclass_from_args
from .errors import UnknownNameError, WorkbenchError

LORA = dict(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear")


@dataclass(frozen=True)
class PeftType:
    name: str
    summary: str
    config_cls: type | None          # a peft.PeftConfig subclass; None = train the model's own weights
    defaults: dict[str, Any]
    knobs_cls: type | None = None    # our own knobs when config_cls is None (e.g. top-k-layers' k)
    post_init: Callable[[Any, dict], None] | None = None   # (trainer.model, peft_args) → None
    prepare: Callable[..., Any] | None = None              # calibration-based init (CorDA, EVA)
    family: str = "adapter"          # adapter | prompt | full


# ---- top-k-layers: full fine-tuning of the top k transformer blocks ------------------------
@dataclass
class TopKLayersArgs:
    k: int = field(default=2, metadata={"help": "number of top (last) transformer blocks that train"})
    train_final_norm: bool = field(default=True, metadata={"help": "also train the final norm after the blocks"})
    train_lm_head: bool = field(default=False, metadata={
        "help": "also train the output head (tied to the input embeddings in many small models)"})

    def __post_init__(self):  # checked by build_peft_config, before any run directory
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise WorkbenchError(f"peft.k must be an integer >= 1 (the number of top blocks that train), "
                                 f"got {self.k!r}")


def transformer_blocks(model):
    """The model's stack of transformer blocks: the longest nn.ModuleList in it."""
    import torch.nn as nn

    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise WorkbenchError(f"{type(model).__name__}: no stack of transformer blocks found")
    return max(lists, key=len)


def check_against_model(name: str, args: dict[str, Any] | None, model_path: str) -> None:
    """Checks that need the model's shape but not its weights (read from its config.json,
    before any run directory exists): top-k-layers' k against the number of blocks."""
    if name != "top-k-layers":
        return
    knobs = dataclass_from_args(TopKLayersArgs, args or {}, where="peft.top-k-layers")
    config = Path(model_path) / "config.json"
    if not config.is_file():
        return  # a hub id: checked when the model is loaded
    data = json.loads(config.read_text())
    blocks = (data.get("text_config") or data).get("num_hidden_layers")
    if isinstance(blocks, int) and knobs.k > blocks:
        raise WorkbenchError(f"peft.k must be between 1 and {blocks} (the model's blocks), got {knobs.k}")


def _freeze_below_top_k(model, args: dict) -> None:
    knobs = dataclass_from_args(TopKLayersArgs, args, where="peft.top-k-layers")
    blocks = transformer_blocks(model)
    if not 1 <= knobs.k <= len(blocks):
        raise WorkbenchError(f"peft.k must be between 1 and {len(blocks)} (the model's blocks), got {knobs.k}")
    model.requires_grad_(False)
    for block in list(blocks)[-knobs.k:]:
        block.requires_grad_(True)
    if knobs.train_final_norm:
        base = getattr(model, getattr(model, "base_model_prefix", "model"), model)
        norm = getattr(base, "norm", None) or getattr(base, "final_layernorm", None)
        if norm is not None:
            norm.requires_grad_(True)
    if knobs.train_lm_head and model.get_output_embeddings() is not None:
        model.get_output_embeddings().requires_grad_(True)


# ---- LoRA B-only (asymmetry): A stays at its random init ------------------------------------
def _freeze_lora_a(model, args: dict) -> None:
    frozen = 0
    for name, p in model.named_parameters():
        if ".lora_A." in name:
            p.requires_grad_(False)
            frozen += 1
    if not frozen:
        raise WorkbenchError("peft lora-b-only: the model has no LoRA A matrices to freeze")


# ---- CorDA / EVA: data-driven LoRA initialisation ------------------------------------------
CALIBRATION_ROWS = 16


def _calibration_batches(model, tokenizer, dataset, n: int = CALIBRATION_ROWS, max_length: int = 256):
    """Up to n tokenised rows of the training data (chat template applied), one per batch."""
    from trl.data_utils import apply_chat_template

    if dataset is None or len(dataset) == 0:
        raise WorkbenchError("CorDA/EVA initialisation needs calibration data: the training set is empty")
    batches = []
    for row in dataset.select(range(min(n, len(dataset)))):
        if "prompt" in row and "completion" in row:
            text = apply_chat_template({"prompt": row["prompt"], "completion": row["completion"]}, tokenizer)
            text = text["prompt"] + text["completion"]
        elif "messages" in row:
            text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        elif "text" in row:
            text = row["text"]
        else:
            raise WorkbenchError("CorDA/EVA initialisation needs text, messages or prompt/completion rows "
                                 f"for calibration; got columns {sorted(row)}")
        enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
        batches.append({k: v.to(model.device) for k, v in enc.items()})
    return batches


def _linear_layer_names(model) -> set[str]:
    """Short names of the model's linear layers, the output head excepted."""
    import torch.nn as nn

    head = model.get_output_embeddings()
    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m is not head}


def _prepare_corda(model, peft_config, tokenizer, dataset):
    """PEFT's CorDA: collect input covariances on calibration rows, then SVD-initialise."""
    import torch
    from peft import get_peft_model
    from peft.tuners.lora.corda import preprocess_corda

    batches = _calibration_batches(model, tokenizer, dataset)
    if peft_config.target_modules == "all-linear":
        # CorDA's preprocessing matches names literally; PEFT expands "all-linear" only later.
        peft_config.target_modules = _linear_layer_names(model)

    @torch.no_grad()
    def run_model():
        for b in batches:
            model(**b)

    preprocess_corda(model, peft_config, run_model=run_model)
    return get_peft_model(model, peft_config)


def _prepare_eva(model, peft_config, tokenizer, dataset):
    """PEFT's EVA: SVD of layer activations on calibration rows initialises A (and ranks)."""
    from peft import get_peft_model, initialize_lora_eva_weights

    batches = _calibration_batches(model, tokenizer, dataset)
    peft_model = get_peft_model(model, peft_config, low_cpu_mem_usage=True)
    initialize_lora_eva_weights(peft_model, dataloader=batches, show_progress_bar=False)
    return peft_model


_PEFT_TYPES: dict[str, PeftType] = {}


def register_peft(ptype: PeftType) -> PeftType:
    """Add a PEFT type to the menu. A name already taken by a different type is refused;
    registering an identical type again is a no-op."""
    menu = _menu()
    known = menu.get(ptype.name)
    if known is not None and known != ptype:
        raise WorkbenchError(f"PEFT type {ptype.name!r} is already registered; choose another name")
    menu[ptype.name] = ptype
    return ptype


def _menu() -> dict[str, PeftType]:
    """The registered types; the built-in ones are added on first use (they import peft)."""
    if not _PEFT_TYPES:
        builtins = _builtin_types()
        names = [p.name for p in builtins]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise WorkbenchError(f"PEFT types registered twice: {', '.join(duplicates)}")
        _PEFT_TYPES.update((p.name, p) for p in builtins)
    return _PEFT_TYPES


def _builtin_types() -> list[PeftType]:
    import peft

    lora = peft.LoraConfig
    return [
        PeftType("full", "full fine-tuning: every weight trains", None, {}, family="full"),
        PeftType("top-k-layers", "full fine-tuning of the top k transformer blocks only; the rest is frozen",
                 None, {}, knobs_cls=TopKLayersArgs, post_init=_freeze_below_top_k, family="full"),
        PeftType("lora", "LoRA: low-rank update B·A on every linear layer", lora, dict(LORA)),
        PeftType("dora", "DoRA: LoRA on the direction plus a learned magnitude per output (use_dora)",
                 lora, {**LORA, "use_dora": True}),
        PeftType("rslora", "rsLoRA: LoRA scaled by alpha/sqrt(r) instead of alpha/r (use_rslora)",
                 lora, {**LORA, "use_rslora": True}),
        PeftType("pissa", "PiSSA: LoRA initialised from the top singular vectors of W (fast SVD)",
                 lora, {**LORA, "init_lora_weights": "pissa_niter_4"}),
        PeftType("olora", "OLoRA: LoRA initialised from a QR decomposition of W",
                 lora, {**LORA, "init_lora_weights": "olora"}),
        PeftType("corda", "CorDA: LoRA from an SVD of W·C, C the input covariance on calibration rows "
                 "(kpm = knowledge-preserving, ipm = instruction-previewed)",
                 lora, {**LORA, "init_lora_weights": "corda"}, prepare=_prepare_corda),
        PeftType("eva", "EVA: LoRA A initialised from an SVD of layer activations on calibration rows",
                 lora, {**LORA, "init_lora_weights": "eva"}, prepare=_prepare_eva),
        PeftType("lora-b-only", "LoRA with A frozen at its random init; only B trains (asymmetry)",
                 lora, dict(LORA), post_init=_freeze_lora_a),
        PeftType("ia3", "(IA)^3: learned vectors rescale keys, values and FFN activations",
                 peft.IA3Config, {}),
        PeftType("loha", "LoHa: low-rank Hadamard product update", peft.LoHaConfig,
                 dict(r=8, alpha=16, target_modules="all-linear")),
        PeftType("lokr", "LoKr: low-rank Kronecker product update", peft.LoKrConfig,
                 dict(r=8, alpha=16, target_modules="all-linear")),
        PeftType("vera", "VeRA: shared frozen random A,B; per-layer scaling vectors train",
                 peft.VeraConfig, dict(r=64, target_modules=["q_proj", "v_proj"])),
        PeftType("prompt-tuning", "prompt tuning: learned virtual-token embeddings before the input",
                 peft.PromptTuningConfig, dict(num_virtual_tokens=16), family="prompt"),
        PeftType("prefix-tuning", "prefix tuning: learned key/value prefixes at every layer",
                 peft.PrefixTuningConfig, dict(num_virtual_tokens=16), family="prompt"),
        PeftType("p-tuning", "P-tuning: virtual tokens produced by a small prompt encoder (MLP)",
                 peft.PromptEncoderConfig, dict(num_virtual_tokens=16, encoder_hidden_size=128), family="prompt"),
    ]


def _nested_configs() -> dict[str, type]:
    from peft.tuners.lora.config import CordaConfig, EvaConfig

    return {"corda_config": CordaConfig, "eva_config": EvaConfig}


def list_peft() -> list[PeftType]:
    return list(_menu().values())


def get_peft(name: str) -> PeftType:
    menu = _menu()
    if name not in menu:
        raise UnknownNameError("PEFT type", name, menu)
    return menu[name]


def peft_config_class(name: str):
    p = get_peft(name)
    return p.config_cls or p.knobs_cls


def build_peft_config(name: str, args: dict[str, Any] | None):
    """The PEFT config for a run (None when the model's own weights train); unknown keys
    or wrong types → one line."""
    p = get_peft(name)
    if p.config_cls is None:
        if p.knobs_cls is not None:
            dataclass_from_args(p.knobs_cls, args or {}, where=f"peft.{name}")  # validate now
        elif args:
            raise UnknownNameError(f"peft key for {name!r}", next(iter(args)), [])
        return None
    merged = {**p.defaults, **(args or {}), "task_type": "CAUSAL_LM"}
    for key, cls in _nested_configs().items():  # e.g. peft.corda_config={corda_method: kpm}
        if isinstance(merged.get(key), dict):
            merged[key] = dataclass_from_args(cls, merged[key], where=f"peft.{name}.{key}")
    try:
        config = dataclass_from_args(p.config_cls, merged, where=f"peft.{name}")
    except (ValueError, TypeError) as e:
        if isinstance(e, WorkbenchError):
            raise
        raise WorkbenchError(f"peft.{name}: {str(e).splitlines()[0]}") from e
    _check_ranges(config)
    return config


# Knobs PEFT's config classes accept at any value and only reject (or misuse) once the
# adapter is built on the model, i.e. after the run directory exists.
_AT_LEAST_ONE = ("r", "num_virtual_tokens", "encoder_hidden_size", "encoder_num_layers")
_DROPOUTS = ("lora_dropout", "rank_dropout", "module_dropout", "vera_dropout", "encoder_dropout")


def _check_ranges(config) -> None:
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for knob in _AT_LEAST_ONE:
        value = getattr(config, knob, None)
        if number(value) and not value >= 1:
            raise WorkbenchError(f"peft.{knob} must be at least 1, got {value}")
    for knob in _DROPOUTS:
        value = getattr(config, knob, None)
        if number(value) and not 0 <= value < 1:
            raise WorkbenchError(f"peft.{knob} is a dropout probability: it must be in [0, 1), got {value}")


def resolved_peft_args(name: str, args: dict[str, Any] | None) -> dict[str, Any]:
    """The knobs a run used (defaults + overrides), for config.json."""
    p = get_peft(name)
    if p.knobs_cls is not None:
        return dataclasses.asdict(dataclass_from_args(p.knobs_cls, args or {}, where=f"peft.{name}"))
    return {**p.defaults, **(args or {})}


def prepare_model(name: str, model, peft_config, tokenizer, dataset):
    """(model, peft_config) for the trainer: unchanged, or — for types whose
    initialisation needs calibration data — the wrapped PeftModel and None."""
    p = get_peft(name)
    if p.prepare is None:
        return model, peft_config
    return p.prepare(model, peft_config, tokenizer, dataset), None


def post_init(name: str, model, args: dict[str, Any] | None) -> None:
    """Run the type's freezing step on the trainer's model (before the optimizer exists)."""
    p = get_peft(name)
    if p.post_init is not None:
        p.post_init(model, dict(args or {}))
