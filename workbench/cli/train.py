"""`workbench train`: flags and/or a YAML file, `--set key=value` overrides. Every scalar
TrainConfig field is a flag (generated from the dataclass, so the CLI never drifts).

`--num-processes N` (and/or `--accelerate-config FILE`) checks everything here, then starts
N data-parallel copies of this same command through accelerate's launcher (see
docs/scaling.md); each copy sees the launcher's RANK/WORLD_SIZE and trains its share."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import sys

from ..config import TrainConfig, field_help, read_yaml_mapping
from ..distributed import is_distributed, is_main
from ..errors import WorkbenchError
from ..runs import Event, Kind
from ..signals import sigterm_as_interrupt


def _scalar_fields():
    for f in dataclasses.fields(TrainConfig):
        if f.name not in ("method_args", "peft_args", "selection"):
            yield f


def add_parser(sub):
    p = sub.add_parser("train", help="train a model with a method (SFT, DPO, …) and PEFT type",
                       description="Precedence: --config YAML < flags < --set key=value. "
                                   "Method/PEFT knobs: --set method.KEY=V, --set peft.KEY=V.")
    p.add_argument("--config", help="YAML file with TrainConfig keys")
    helps = {n: h for n, _, h in field_help(TrainConfig)}
    for f in _scalar_fields():
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                       metavar=f.name.upper(), help=helps[f.name])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any key, e.g. learning_rate=1e-4, method.loss_type=dft, peft.r=16")
    p.add_argument("--resume", action="store_true",
                   help="continue --run-dir from its last complete checkpoint (only --max-steps may change)")
    p.add_argument("--list-methods", action="store_true", help="list methods and PEFT types, then exit")
    p.add_argument("--quiet", action="store_true", help="no per-step lines")
    p.add_argument("--num-processes", default=None, metavar="N",
                   help="data-parallel processes, started with `accelerate launch` (GPUs: one per GPU; "
                        "no GPU: CPU processes over gloo, each with cores/N threads)")
    p.add_argument("--accelerate-config", default=None, metavar="FILE",
                   help="accelerate config file passed to `accelerate launch --config_file` (e.g. FSDP; "
                        "see templates/accelerate_fsdp.yaml)")
    p.set_defaults(func=run)


# What a per-step line shows for each record kind, when the record has it.
_SHOWN = {
    Kind.TRAIN: ("loss", "rewards/accuracies", "kl_to_ref", "tokens_per_s"),
    Kind.EVAL: ("eval_loss", "accuracy", "eval_ranking_accuracy", "eval_rewards/accuracies", "eval_kl_to_ref"),
    Kind.EVENT: ("round", "reward_mean", "sample_accuracy", "pairs"),
}


def _print_record(rec) -> None:
    keys = [k for k in _SHOWN.get(rec.kind, ()) if isinstance(rec.values.get(k), (int, float))]
    if rec.kind is Kind.EVENT and rec.event != Event.ROUND:
        return
    if keys:
        shown = "  ".join(f"{k} {rec.values[k]:.4g}" for k in keys)
        print(f"step {rec.step:>5}  {rec.kind:5}  {shown}", flush=True)


def _flag(name: str) -> str:
    """A TrainConfig field as its command-line flag (also used to rebuild the command for accelerate)."""
    return f"--{name.replace('_', '-')}"


def _resume_config(args) -> TrainConfig:
    """The run's own config.json, for exactly the directory given (never the run_dir stored
    inside it), with the command line over it: the engine refuses any change but --max-steps,
    so the command that started the run, run again with --resume, continues it."""
    from ..engine import resume_config

    cfg = resume_config(args.run_dir)
    if args.config:
        cfg.update(read_yaml_mapping(args.config, "config file", "config keys"), where=args.config)
    _apply_flags(cfg, args)
    cfg.run_dir = args.run_dir
    return cfg


def _apply_flags(cfg: TrainConfig, args) -> None:
    """The command line over `cfg`: flags, then --set (the documented precedence)."""
    for f in _scalar_fields():
        value = getattr(args, f.name)
        if value is not None:
            cfg.apply_flag(f.name, value)
    cfg.apply_overrides(args.set)


def run(args) -> int:
    if args.list_methods:
        from ..methods import list_methods
        from ..peft_menu import list_peft

        print("methods:")
        for m in list_methods():
            print(f"  {m.name:18} [{m.data_format}] {m.summary}")
        print("peft:")
        for p in list_peft():
            print(f"  {p.name:18} {p.summary}")
        return 0

    from ..engine import train

    if args.resume:
        if not args.run_dir:
            raise WorkbenchError("--resume needs --run-dir (the run directory to continue)")
        cfg = _resume_config(args)
    else:
        cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
        _apply_flags(cfg, args)

    if args.num_processes is not None or args.accelerate_config:
        from ._launch import launch

        return launch(args, cfg)

    listeners = [] if args.quiet else [_print_record]
    # One process: SIGTERM ends the run as Ctrl-C does (summary "interrupted", where to resume).
    # Data-parallel ranks keep the default: one rank raising mid-all-reduce would hang the others.
    stopping = contextlib.nullcontext() if is_distributed() else sigterm_as_interrupt()
    if not cfg.run_dir:  # named now, so that a failure below can say where the run is
        from ..runs import default_run_dir

        cfg.run_dir = str(default_run_dir(cfg.method, cfg.model))
    try:
        with stopping:
            result = train(cfg, listeners=listeners, resume=args.resume)
    except Exception as e:  # the disk, not the input: the run is marked failed with this reason
        from ._paths import disk_full

        if disk_full(e):
            print(f"workbench train: error: no space left on device while writing {cfg.run_dir}; the run is "
                  f"marked failed: free some space, then `workbench train --resume --run-dir {cfg.run_dir}`",
                  file=sys.stderr)
            return 1
        if not isinstance(e, OSError):
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"workbench train: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    if not is_main():  # a data-parallel follower: the main process reports the run
        return 1 if result.status == "failed" else 0
    print(json.dumps(result.summary, indent=2))
    print(f"run directory: {result.run_dir}  ({result.status})")
    if result.status == "failed":
        print(f"workbench train: error: {result.summary['reason']}", file=sys.stderr)
        return 1
    return 0
