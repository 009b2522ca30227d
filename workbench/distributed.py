"""Which process of a multi-process (data-parallel) run this is, and the few messages the
processes exchange besides the gradients the Trainer's DDP already averages.

`accelerate launch` (or `workbench train --num-processes N`, which calls it) starts N copies
of `workbench train` and describes each in its environment: RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE. The main process (rank 0) alone writes the run directory; the others train
their share of every batch and follow. What they must agree on travels over a gloo group
(CPU tensors, whatever backend the gradients use):

- the run directory and the checkpoint a resume starts from (chosen by the main process);
- stop: a STOP file, a stop event or a NaN loss seen on one rank stops every rank at the
  same step, or the next gradient all-reduce would wait forever (`any_rank`).

Outside a launcher (no WORLD_SIZE, or 1) every helper is a cheap no-op.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

from .errors import WorkbenchError

_control = None      # the gloo process group for our own messages (None: the default group is gloo)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.lstrip("-").isdigit() else default


def rank() -> int:
    return _env_int("RANK", 0)


def world_size() -> int:
    return max(1, _env_int("WORLD_SIZE", 1))


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def local_world_size() -> int:
    return max(1, _env_int("LOCAL_WORLD_SIZE", world_size()))


def is_main() -> bool:
    return rank() == 0


def is_distributed() -> bool:
    return world_size() > 1


def init(cpu: bool) -> None:
    """Join the process group the launcher described, before the Trainer would, so the run
    directory can be agreed on first. accelerate's PartialState picks the backend (gloo on
    CPU, nccl on GPUs) and the GPU of this rank; the Trainer later rebuilds its own state
    on the same, still initialised, process group."""
    global _control
    if not is_distributed():
        return
    import torch.distributed as dist
    from accelerate import PartialState

    if not dist.is_initialized():
        PartialState(cpu=cpu)
    if _control is None:
        # Stop flags and paths are tiny CPU objects; nccl only carries GPU tensors.
        _control = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")


def _group():
    return _control


def _active() -> bool:
    if not is_distributed():
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if _active():
        import torch.distributed as dist

        dist.barrier(group=_group())


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any (an all-reduce MAX of 0/1). Every rank
    must call it at the same point, which the Trainer's callbacks guarantee."""
    if not _active():
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_group())
    return bool(t.item())


def from_main(make) -> Any:
    """Run `make()` on the main process and hand its result to every rank. A WorkbenchError
    there is raised on every rank (one line each), so no rank waits for a run that never
    opened; any other exception on the main process surfaces as one on the others too."""
    if not _active():
        return make()
    import torch.distributed as dist

    box: list = [None]
    error = None
    if is_main():
        try:
            box[0] = ("ok", make())
        except WorkbenchError as e:
            error, box[0] = e, ("error", str(e))
        except BaseException as e:
            error, box[0] = e, ("crash", f"{type(e).__name__}: {e}")
    dist.broadcast_object_list(box, src=0, group=_group())
    status, value = box[0]
    if error is not None:
        raise error
    if status == "error":
        raise WorkbenchError(value)
    if status == "crash":
        raise RuntimeError(f"the main process failed: {value}")
    return value


@contextlib.contextmanager
def main_first():
    """The main process runs the block first (e.g. converting a model into the shared
    cache), the others after it, so they read what it wrote instead of racing it."""
    if not _active():
        yield
        return
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()
