"""`workbench train --num-processes N [--accelerate-config FILE]`: check everything in this
process, then hand the same command (minus those two flags) to accelerate's launcher, which
starts N copies under torch.distributed (DDP through the Trainer; FSDP etc. when the config
file says so). Bad input is one line and exit 2 here, before any process starts or any
file is written."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from ..errors import WorkbenchError


def _processes(raw) -> int:
    text = str(raw).strip()
    if not text.isdigit() or int(text) < 1:
        raise WorkbenchError(f"--num-processes must be a whole number >= 1, got {raw!r}")
    return int(text)


def _child_argv(args) -> list[str]:
    """The command each process runs: this one, rebuilt from the parsed flags, without the
    launcher's own flags (so a child never launches again)."""
    from .train import _flag, _scalar_fields

    argv = ["train"]
    if args.config:
        argv += ["--config", args.config]
    for f in _scalar_fields():
        value = getattr(args, f.name)
        if value is not None:
            argv += [_flag(f.name), str(value)]
    for pair in args.set:
        argv += ["--set", pair]
    argv += ["--resume"] * args.resume + ["--quiet"] * args.quiet
    return argv


def _free_port() -> int:
    # Several launches on one machine (tests, sweeps) must not meet on accelerate's default 29500.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_capacity(processes: int, device: str) -> None:
    import torch

    from ..threads import available_cores

    if device.startswith("cuda"):
        gpus = torch.cuda.device_count()
        if processes > gpus:
            raise WorkbenchError(f"--num-processes {processes}: only {gpus} GPU(s) here (one process per GPU)")
    else:
        cores = available_cores()
        if processes > cores:
            raise WorkbenchError(f"--num-processes {processes}: only {cores} CPU core(s) available to this process; "
                                 f"use at most {cores}")


def launch(args, cfg) -> int:
    """Validate, then run `accelerate launch … -m workbench.cli.main train …`; returns the
    exit code of the first process that failed (2 for bad input), else 0."""
    from ..distributed import is_distributed
    from ..engine import check_processes, check_resume_world, plan

    processes = None if args.num_processes is None else _processes(args.num_processes)
    if is_distributed():
        raise WorkbenchError("--num-processes/--accelerate-config: this process was already started by a launcher "
                             f"(WORLD_SIZE={os.environ.get('WORLD_SIZE')}); drop those flags")
    config_file = args.accelerate_config
    if config_file is not None and not Path(config_file).is_file():
        raise WorkbenchError(f"--accelerate-config {config_file}: no such file")
    accel = _accelerate_config(config_file)
    p = plan(cfg)  # every input error now, in one process, before anything starts
    n = processes or (accel.num_processes if accel and accel.num_processes and accel.num_processes >= 1 else 1)
    check_processes(p, n, fsdp=accel is not None and accel.distributed_type == "FSDP")
    _check_capacity(n, p.device)
    if args.resume:
        check_resume_world(cfg.run_dir, n)
    if n == 1 and config_file is None:  # nothing to launch: train here
        args.num_processes = None
        from .train import run

        return run(args)
    return _run_launcher(_launcher_argv(n, config_file, processes is not None), _child_argv(args), n)


def _accelerate_config(config_file):
    """The config file as accelerate itself reads it (unknown keys and bad YAML are refused here)."""
    if config_file is None:
        return None
    from accelerate.commands.config.config_args import load_config_from_file

    try:
        return load_config_from_file(config_file)
    except Exception as e:  # yaml, unknown keys (TypeError), bad values: accelerate's own message
        detail = " ".join(str(e).split())[:200]
        raise WorkbenchError(f"--accelerate-config {config_file}: not a valid accelerate config file "
                             f"({type(e).__name__}: {detail})") from None


def _launcher_argv(n: int, config_file: str | None, explicit: bool) -> list[str]:
    if config_file is not None:
        argv = ["--config_file", config_file] + (["--num_processes", str(n)] if explicit else [])
        return argv + ["--main_process_port", str(_free_port())]
    # --multi_gpu is accelerate's torchrun launcher; without GPUs its processes use the CPU
    # and gloo (accelerate's --cpu flag would start a single process).
    return ["--multi_gpu", "--num_processes", str(n), "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "--main_process_port", str(_free_port())]


def _run_launcher(launcher_argv: list[str], child_argv: list[str], n: int) -> int:
    import subprocess

    from accelerate.commands.launch import launch_command, launch_command_parser
    from accelerate.utils import patch_environment
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from ..threads import WORKERS_ENV, _positive_int, worker_env

    largs = launch_command_parser().parse_args([*launcher_argv, "-m", "workbench.cli.main", *child_argv])
    # Each process gets its share of the cores (OMP_NUM_THREADS, if the user set it, wins).
    env = worker_env(n * (_positive_int(WORKERS_ENV) or 1))
    try:
        with patch_environment(**env):
            launch_command(largs)
    except ChildFailedError as e:
        _, failure = e.get_first_failure()
        return failure.exitcode if failure.exitcode and failure.exitcode > 0 else 1
    except subprocess.CalledProcessError as e:  # launchers that run a subprocess (e.g. DeepSpeed)
        return e.returncode or 1
    except SignalException:
        return 130
    return 0
