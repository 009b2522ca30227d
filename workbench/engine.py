"""`train(config)`: validate → open the run → build the method → attach → train → finish.

Everything the user can get wrong (config values, model, method and its knobs, PEFT type
and knobs, dataset, selection, device) is checked in `plan()` *before* the run directory
exists, so a typo never leaves a half-made run. The run's lifecycle (directory, lock,
records, stop, checkpoints, final save, summary) is the `Run`'s; a method returns either
a TRL/transformers Trainer or a `Coordinator` that drives several of them.

Under `accelerate launch` (data parallel, see docs/scaling.md) every process runs `train`:
all check the plan, the main process alone opens the run directory and tells the others
where it is; the Trainer's DDP splits each batch across them (workbench/distributed.py).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from trl.data_utils import is_conversational

from . import distributed
from .allocator import keep_freed_memory
from .config import TrainConfig, dataclass_from_args, differing_keys
from .data.prep_bar import one_bar
from .errors import WorkbenchError
from .methods import MethodSpec, get_method
from .models import load_model, load_tokenizer, pick_device, resolve, use_bf16
from .models.decoding import release_eval_decoder
from .peft_menu import build_peft_config, check_against_model, get_peft, post_init, prepare_model, resolved_peft_args
from .runs.finite import trainable_weights_finite
from .runs.records import Listener
from .runs.run import Run, RunResult
from .runs.store import default_run_dir
from .threads import size_torch_threads
from .training.context import TrainContext
from .training.coordinator import Coordinator
from .training.cpu_lm_head import use_cpu_lm_head
from .training.frozen_bf16 import use_frozen_bf16
from .training.samples import Sampler

__all__ = ["Plan", "RunResult", "plan", "train"]


@dataclass
class Plan:
    """A validated run: everything `train` needs, nothing written yet."""
    config: TrainConfig
    spec: MethodSpec
    method_config: Any
    peft_config: Any
    train_dataset: Any
    eval_dataset: Any
    selection: Any
    device: str
    bf16: bool
    eval_tasks: Any = None        # evaluation.EvalConfig for in-training harness evals, or None

    def resolved(self) -> dict:
        """config.json: the full configuration with every default filled in."""
        c = self.config
        world = distributed.world_size()
        return {**c.to_dict(), "method_args": dataclasses.asdict(self.method_config),
                "peft_args": resolved_peft_args(c.peft, c.peft_args),
                "resolved": {"device": self.device, "bf16": self.bf16,
                             # data parallel: each of `world_size` processes takes batch_size rows a micro-step
                             "world_size": world, "num_processes": world,
                             "global_batch_size": c.batch_size * c.grad_accum * world,
                             "train_rows": len(self.train_dataset),
                             "eval_rows": len(self.eval_dataset) if self.eval_dataset is not None else 0,
                             "data_format": self.spec.data_format, "versions": _versions()}}


def plan(config: TrainConfig) -> Plan:
    """Check the whole configuration and load the data; raise WorkbenchError (one line) on
    the first problem. Touches no run directory."""
    cfg = dataclasses.replace(config, method_args=dict(config.method_args),
                              peft_args=dict(config.peft_args), selection=dict(config.selection))
    cfg.validate()
    _absolute_local_paths(cfg)
    spec = get_method(cfg.method)
    method_cfg = dataclass_from_args(spec.config_cls, cfg.method_args, where=f"method.{cfg.method}")
    spec.check(cfg, method_cfg)
    get_peft(cfg.peft)
    if not spec.peft_ok(cfg.peft):
        raise WorkbenchError(f"method {cfg.method!r} cannot train with peft {cfg.peft!r}")
    peft_config = build_peft_config(cfg.peft, cfg.peft_args)
    check_against_model(cfg.peft, cfg.peft_args, resolve(cfg.model))
    device = pick_device(cfg.device)
    eval_tasks = _eval_tasks(cfg, spec)
    train_ds, eval_ds, selection = _load_data(cfg, spec.data_format)
    chats = len(train_ds) > 0 and is_conversational(train_ds[0])  # TRL's own test for applying the template
    if chats or spec.check_data is not None:
        tok = load_tokenizer(cfg.model)
        if chats and not getattr(tok, "chat_template", None):  # TRL and the checks below would raise mid-way
            raise WorkbenchError(f"model {cfg.model!r} has no chat template, and dataset {cfg.dataset!r} holds chat "
                                 f"messages; pick an instruct model (e.g. smollm2-135m-instruct) or plain-text data")
        if spec.check_data is not None:
            spec.check_data(cfg, method_cfg, tok, train_ds)
    return Plan(cfg, spec, method_cfg, peft_config, train_ds, eval_ds, selection, device,
                use_bf16(device, cfg.precision), eval_tasks)


def _absolute_local_paths(cfg: TrainConfig) -> None:
    """A local model or data path as an absolute path: config.json (and the adapter's base model)
    then names it from any working directory; a relative one broke `shift`, `generate` and
    `--resume` run from another folder ("unknown model 'my-model'")."""
    from .data.catalog import BUILTIN as DATASETS
    from .models import BUILTIN as MODELS

    for name, builtin in (("model", MODELS), ("dataset", DATASETS)):
        value = getattr(cfg, name)
        if isinstance(value, str) and value not in builtin and Path(value).expanduser().exists():
            setattr(cfg, name, str(Path(value).expanduser().resolve()))


def _eval_tasks(cfg: TrainConfig, spec: MethodSpec):
    """The harness settings for `eval_tasks`, every task's data checked now (one line if a task
    is unknown or its data unavailable), or None."""
    if not cfg.eval_tasks.strip():
        return None
    if spec.coordinated:
        raise WorkbenchError(f"eval_tasks: not available for {cfg.method!r} yet (its rounds already report "
                             "held-out accuracy); run `workbench eval` on the run directory afterwards")
    from .evaluation import EvalConfig
    from .evaluation.harness import load_task

    ecfg = EvalConfig(tasks=cfg.eval_tasks, limit=cfg.eval_tasks_limit).validate()
    for task in ecfg.tasks:
        load_task(task, ecfg)
    return ecfg


# config.json's bookkeeping (where the run is, what it resolved, its resumes): not settings.
_BOOKKEEPING = ("run_dir", "resolved", "resumes")
# What may differ between a run's config.json and the config that resumes it.
_RESUME_MAY_DIFFER = (*_BOOKKEEPING, "max_steps")


def check_resume_config(p: Plan, run_dir: str) -> None:
    """Resuming trains the run that config.json describes: a config that differs in anything but
    max_steps (a notebook resuming with another learning rate, batch size or LoRA rank) would
    train another job on its checkpoint while config.json says otherwise. Compared with every
    default filled in, as config.json stores it."""
    from .runs import open_run

    saved = open_run(run_dir).config
    mine = json.loads(json.dumps(p.resolved(), default=str))
    differ = [k for k in differing_keys(mine, saved, ignore=_RESUME_MAY_DIFFER)
              if not (k in ("model", "dataset") and _same_path(mine.get(k), saved.get(k)))]
    if differ:
        key = differ[0]
        have, asked = saved.get(key), mine.get(key)
        if isinstance(have, dict) and isinstance(asked, dict):  # name the knob, not two whole mappings
            sub = differing_keys(asked, have)[0]
            key, have, asked = f"{key}.{sub}", have.get(sub), asked.get(sub)
        raise WorkbenchError(f"{key} cannot change on resume (the run has {have!r}, asked {asked!r}); "
                             "only max_steps can: start a new run to change anything else")


def _same_path(a, b) -> bool:
    """The same local file or folder: a run recorded before paths were made absolute names its model
    and data relative to the folder it was trained from."""
    return isinstance(a, str) and isinstance(b, str) and Path(b).expanduser().exists() and \
        Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def resume_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig of the run in `run_dir` (its config.json, defaults filled in), pointed at
    exactly that directory: what resuming it trains (max_steps may then grow)."""
    from .runs import open_run

    saved = open_run(run_dir).config
    keep = {k: copy.deepcopy(v) for k, v in saved.items() if k not in _BOOKKEEPING}
    cfg = TrainConfig.from_dict(keep, where=f"{run_dir}/config.json")
    cfg.run_dir = str(run_dir)
    return cfg


def as_config(config) -> TrainConfig:
    """A TrainConfig from what a notebook may pass: one, a dict of its keys, or a YAML path."""
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, dict):
        return TrainConfig.from_dict(config, where="train()")
    if isinstance(config, (str, Path)):
        return TrainConfig.from_yaml(config)
    raise WorkbenchError(f"train() takes a TrainConfig, a mapping of its keys or a YAML file, "
                         f"got {type(config).__name__}")


def train(config: TrainConfig | dict | str | Path, listeners: Iterable[Listener] = (),
          stop: threading.Event | None = None, resume: bool = False) -> RunResult:
    """Run one training job. Blocking; widgets call it from a background thread.

    listeners: callables that receive every MetricsRecord as it is written.
    stop: set it to end training at the next step (the state is checkpointed).
    resume: continue exactly `config.run_dir` from its last complete checkpoint
    (`config.max_steps` may be larger than before; the change is recorded).
    config: a TrainConfig, a mapping of its keys, or a YAML file of them (what `--config` reads)."""
    config = as_config(config)
    distributed.init(cpu=_on_cpu(config.device))
    with distributed.main_first():  # the main process fills the model cache; the others then read it
        p = plan(config)
    cfg = p.config
    check_processes(p, distributed.world_size())
    size_torch_threads()  # this process's share of the cores (see workbench/threads.py)
    keep_freed_memory()  # reuse freed logit-sized blocks instead of re-faulting them (workbench/allocator.py)
    opened: list[Run] = []

    def open_run() -> tuple:
        if resume:
            if not cfg.run_dir:
                raise WorkbenchError("resume needs the run directory (--run-dir)")
            check_resume_world(cfg.run_dir, distributed.world_size())
            check_resume_config(p, cfg.run_dir)
            run = Run.resume(cfg.run_dir, listeners, stop, max_steps=cfg.max_steps)
        else:
            run = Run.create(cfg.run_dir or default_run_dir(cfg.method, cfg.model), p.resolved(), listeners, stop)
        opened.append(run)
        return str(run.path), run.config, str(run.checkpoint) if run.checkpoint else None

    # Only the main process creates/locks the directory; the others follow where it opened it.
    path, run_config, checkpoint = distributed.from_main(open_run)
    run = opened[0] if opened else Run.follow(path, run_config, checkpoint)
    if cfg.tracker:  # mirror records, config, samples to a tracker, main process only (workbench/tracking.py)
        from .tracking import attach_tracker

        attach_tracker(run, cfg.tracker)
    with run:
        if run.checkpoint_step >= cfg.max_steps:  # killed during its final save: nothing left to train
            run.final_from_checkpoint(load_tokenizer(cfg.model).save_pretrained)
            return run.finish(steps=run.checkpoint_step, extra=_selection_info(p))
        job, tok = _build(p, run)
        started = time.time()
        try:
            if isinstance(job, Coordinator):
                job.setup(run)
                steps = job.train()
                job.close()
            else:
                sampler = Sampler(tok, _sample_prompts(p), cfg.sample_max_new_tokens)
                run.attach(job, sampler=sampler)
                if hasattr(job, "run_samples"):  # the preference probes decode them beside their KL samples
                    job.run_samples = sampler
                if p.eval_tasks is not None and run.main:
                    from .evaluation.callback import HarnessEvalCallback

                    job.add_callback(HarnessEvalCallback(run, p.eval_tasks, tok, every=cfg.eval_steps))
                job.train(resume_from_checkpoint=str(run.checkpoint) if run.checkpoint else None)
                steps = job.state.global_step
        finally:
            release_eval_decoder()  # an evaluation's decoding copy never outlives training, failed or not
            if getattr(job, "frozen_bf16", None) is not None:
                job.frozen_bf16.release()  # the model leaves train() with its layers' own forwards
        # A NaN step's update usually leaves NaN weights; saved as final/ they would feed every
        # probe, chat and merge a broken model. Checked on every rank (FSDP shards the weights).
        if run.nan_step is not None and not trainable_weights_finite(job.model):
            run.weights_not_finite = True
        else:
            run.save_final(job.save_model)
        return run.finish(steps=steps, extra=_selection_info(p), runtime_s=time.time() - started)


def _on_cpu(device) -> bool:
    """Whether a multi-process run of this device setting uses the CPU (gloo) backend."""
    import torch

    device = str(device or "auto")
    return not (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()))


def check_processes(p: Plan, processes: int, fsdp: bool | None = None) -> None:
    """One line if `processes` data-parallel processes cannot train this plan. `fsdp`: an
    accelerate config asks for FSDP (default: what `accelerate launch` told this process)."""
    if fsdp is None:
        fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
    if fsdp and not p.device.startswith("cuda"):
        # accelerate enables FSDP only on accelerators; CPU processes would silently run plain DDP
        raise WorkbenchError(f"FSDP (accelerate config) needs CUDA GPUs, but this run's device is {p.device}; "
                             "drop the FSDP config (CPU processes train with DDP: --num-processes N)")
    if fsdp and p.eval_tasks is not None:  # the harness runs on the main rank alone; FSDP forwards are collective
        raise WorkbenchError("eval_tasks cannot run under FSDP (the harness evaluates on the main process only); "
                             "drop --eval-tasks or the FSDP config")
    if processes <= 1:
        return
    if p.spec.coordinated:
        raise WorkbenchError(f"--num-processes {processes}: method {p.config.method!r} runs an on-policy loop "
                             "(generate, score, train rounds) that trains in one process only; drop "
                             "--num-processes (or use 1)")
    if p.device == "mps":
        raise WorkbenchError(f"--num-processes {processes}: data-parallel training needs CUDA GPUs or the CPU, "
                             "not mps; pass --device cpu or drop --num-processes")


def check_resume_world(run_dir, processes: int) -> None:
    """A resume keeps the run's global batch: the same number of processes as before."""
    from .runs import open_run

    before = int(open_run(run_dir).config.get("resolved", {}).get("world_size") or 1)
    if before != processes:
        raise WorkbenchError(f"{run_dir} was trained with {before} process(es); resume it with "
                             f"--num-processes {before}, not {processes} (the global batch would change)")


def _build(p: Plan, run: Run):
    """Load the model, apply the PEFT type's preparation, and build the method's trainer
    (or coordinator); record the trainable share for the run's start event and summary."""
    cfg = p.config
    device = p.device
    if distributed.is_distributed() and device == "cuda":
        device = f"cuda:{distributed.local_rank()}"  # each rank on its own GPU, as the Trainer expects
    model, tok = load_model(cfg.model, device=device)
    total = sum(t.numel() for t in model.parameters())
    # The run's seed decides the adapter's initial weights (LoRA's A is random), not whatever the
    # process drew before. TRL's trainers seed before they wrap the model; the on-policy
    # coordinator wraps it itself, and without this started elsewhere in a kernel that had run cells.
    from transformers import set_seed

    set_seed(cfg.seed)
    model, peft_config = prepare_model(cfg.peft, model, p.peft_config, tok, p.train_dataset)  # CorDA/EVA calibration
    ctx = TrainContext(config=cfg, method_config=p.method_config, model=model, tokenizer=tok,
                       train_dataset=p.train_dataset, eval_dataset=p.eval_dataset, peft_config=peft_config,
                       output_dir=str(run.checkpoints_dir), bf16=p.bf16, device=p.device)
    with one_bar(1 + (p.eval_dataset is not None)):  # one bar, not four per split
        job = p.spec.build_trainer(ctx)
    use_cpu_lm_head(job)  # TRL's fused LM head is slow on CPU (see that module)
    post_init(cfg.peft, job.model, cfg.peft_args)  # e.g. LoRA B-only freezes A, top-k-layers the lower blocks
    if not isinstance(job, Coordinator):  # frozen LoRA base weights cast to bf16 once, not at every call
        job.frozen_bf16 = use_frozen_bf16(job, p.bf16)  # CPU only: it checks
    trainable = sum(t.numel() for t in job.model.parameters() if t.requires_grad)
    run.start_info = {"trainable_params": trainable, "total_params": total,
                      "trainable_share": round(trainable / total, 6),
                      "resumed_from": str(run.checkpoint) if run.checkpoint else None}
    return job, tok


def _load_data(cfg: TrainConfig, data_format: str):
    from . import data

    train_ds = data.load(cfg.dataset, format=data_format, split="train", max_rows=cfg.max_rows, seed=cfg.seed,
                         on_error=cfg.on_error)
    eval_ds = None
    if cfg.eval_rows:
        eval_ds = data.load(cfg.dataset, format=data_format, split="eval", max_rows=cfg.eval_rows, seed=cfg.seed,
                            on_error=cfg.on_error)
    if len(train_ds) == 0:
        raise WorkbenchError(f"dataset {cfg.dataset!r} has no training rows")
    selection = None
    if cfg.selection:
        from .selection import select

        knobs = dict(cfg.selection)
        strategy = knobs.pop("strategy", None)
        if not strategy:
            raise WorkbenchError("selection: missing 'strategy'")
        selection = select(train_ds, strategy, seed=cfg.seed, **knobs)
        train_ds = selection.subset(train_ds)
    return train_ds, eval_ds, selection


def _sample_prompts(p: Plan) -> list:
    source = p.eval_dataset if p.eval_dataset is not None and len(p.eval_dataset) else p.train_dataset
    rows = source.select(range(min(p.config.sample_prompts, len(source))))
    if "prompt" in source.column_names:
        return list(rows["prompt"])
    if "text" in source.column_names:  # raw text (cpt): each document's opening, to be continued
        from .data.openings import document_openings

        return document_openings(rows["text"])
    return []


def _selection_info(p: Plan) -> dict:
    s = p.selection
    return {"selection": {"strategy": s.strategy, "rows": len(s.indices)}} if s is not None else {}


def _versions() -> dict:
    import peft
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__, "peft": peft.__version__}
