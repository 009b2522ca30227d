"""`Run`: one run directory's whole life, for every producer of a model (the engine's
TRL trainers, the on-policy coordinator, later merges).

    with Run.create(path, config, listeners, stop) as run:    # or Run.resume(path, …)
        run.attach(trainer, sampler=…)                       # one callback: records, stop, checkpoints, samples
        trainer.train(resume_from_checkpoint=run.checkpoint)
        run.save_final(trainer.save_model)
        result = run.finish(steps=trainer.state.global_step)

It owns: the directory (created only after everything validated; refused with one line
if it is a file, not creatable, not empty, or held by another process), the exclusive
lock, the record stream (run store + listeners), stop (an Event or a STOP file),
checkpoint sealing and choice on resume (only *complete* checkpoints count), the final
save (written beside `final/` and renamed in, shareable files only) and the summary. An
exception inside the `with` block marks the run failed/interrupted *with its reason*.

In a multi-process (data-parallel) run only the main process opens the run with `create` or
`resume`; the other ranks get `Run.follow(...)`, a Run that watches stop requests and takes
part in collective saves but writes nothing, locks nothing and calls no listeners.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .. import distributed
from ..errors import WorkbenchError
from .lock import LOCK, RunLock
from .records import Event, Kind, Listener, MetricsRecord
from .store import CHECKPOINTS, CONFIG, FINAL, METRICS, SUMMARY, RunStore, open_run, read_jsonl, write_json_atomic

log = logging.getLogger("workbench")

COMPLETE = ".complete"      # written into a checkpoint folder once everything in it is saved
CHECKPOINT_PREFIX = "checkpoint-"
# Files that never go into final/ (the folder meant to be shared): pickles and optimizer state.
_NOT_SHAREABLE = {".bin", ".pt", ".pth", ".pkl", ".pickle"}
_CHECKPOINT_ONLY = {"trainer_state.json", COMPLETE}


@dataclass
class RunResult:
    run_dir: Path
    status: str                      # completed | stopped | failed
    summary: dict
    records: list[MetricsRecord] = field(default_factory=list)


def _checkpoint_step(path: Path) -> int | None:
    tail = path.name[len(CHECKPOINT_PREFIX):]
    return int(tail) if path.name.startswith(CHECKPOINT_PREFIX) and tail.isdigit() else None


def seal_checkpoint(folder: str | Path, **meta) -> None:
    """Mark a checkpoint folder complete (its writer finished every file)."""
    write_json_atomic(Path(folder) / COMPLETE, meta)


def complete_checkpoints(checkpoints_dir: Path) -> tuple[list[Path], list[Path]]:
    """(complete checkpoints by step, incomplete ones). A folder without the COMPLETE
    marker was cut short (killed while saving, disk full) and can't be resumed from."""
    complete, broken = [], []
    if checkpoints_dir.is_dir():
        for p in checkpoints_dir.iterdir():
            if p.is_dir() and _checkpoint_step(p) is not None:
                (complete if (p / COMPLETE).is_file() or _legacy_complete(p) else broken).append(p)
    return sorted(complete, key=_checkpoint_step), sorted(broken, key=_checkpoint_step)


def resume_step(run_dir: str | Path) -> int:
    """The step a resume of this run starts after: its newest complete checkpoint's (0 if none)."""
    complete = complete_checkpoints(Path(run_dir) / CHECKPOINTS)[0]
    return _checkpoint_step(complete[-1]) if complete else 0


def _legacy_complete(p: Path) -> bool:
    """Checkpoints written before the marker existed: transformers writes trainer_state.json
    last, so a readable one means the save finished."""
    try:
        return json.loads((p / "trainer_state.json").read_text()).get("global_step") == _checkpoint_step(p)
    except (OSError, ValueError, AttributeError):
        return False


def copy_shareable(src: Path, dst: Path) -> None:
    """Copy a checkpoint's weights, configs and tokenizer files (no pickles, no optimizer)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix not in _NOT_SHAREABLE and f.name not in _CHECKPOINT_ONLY:
            shutil.copy2(f, dst / f.name)


def _prepare_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise WorkbenchError(f"run directory {path} is a file, not a directory; pick another --run-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkbenchError(f"cannot create run directory {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise WorkbenchError(f"run directory {path} is not writable")


def _finite(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


class Run:
    """See the module docstring. Build with `Run.create` or `Run.resume`."""

    def __init__(self, path: str | Path, config: dict, listeners: Iterable[Listener] = (),
                 stop: threading.Event | None = None):
        self.path = Path(path)
        self.store = RunStore(self.path)
        self.config = config
        self.listeners = list(listeners)
        self.stop_event = stop
        self.records: list[MetricsRecord] = []   # this session's records
        self.checkpoint: Path | None = None      # the complete checkpoint a resume starts from
        self.stopped_at: int | None = None
        self.nan_step: int | None = None
        self.weights_not_finite = False          # a NaN step left non-finite weights: none saved
        self.step = 0                            # the last step a record was emitted at
        self.start_info: dict = {}
        self._lock = RunLock(self.path)
        self._finished = False
        self.main = True                         # False: a follower rank of a multi-process run (writes nothing)

    # ---- opening ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: dict, listeners: Iterable[Listener] = (),
               stop: threading.Event | None = None) -> "Run":
        path = Path(path)
        _prepare_dir(path)
        run = cls(path, config, listeners, stop)
        run._lock.acquire()
        if any(p.name != LOCK for p in path.iterdir()):
            run._lock.release()
            raise WorkbenchError(f"run directory {path} already exists and is not empty "
                                 "(use --resume to continue it, or pick another --run-dir)")
        run.store.create(config)
        return run

    @classmethod
    def resume(cls, path: str | Path, listeners: Iterable[Listener] = (), stop: threading.Event | None = None,
               max_steps: int | None = None) -> "Run":
        """Continue the run in exactly this directory (never a path read back from inside
        it, so a moved or copied run resumes). `max_steps` may grow; the change is recorded."""
        path = Path(path)
        open_run(path)  # one line if it is not a readable run
        run = cls(path, {}, listeners, stop)
        run._lock.acquire()
        try:
            info = open_run(path)  # re-read under the lock
            run.config = info.config
            old_max = int(info.config.get("max_steps") or 0)
            grows = max_steps is not None and max_steps > old_max
            if info.summary.get("status") == "completed" and not grows:
                raise WorkbenchError(f"{path} already completed {info.summary.get('steps')} steps; nothing to "
                                     "resume (pass a larger --max-steps to train further)")
            if info.summary.get("nan_step") is not None:  # seeded data order and RNG: the same NaN again
                raise WorkbenchError(f"{path} failed: {info.summary.get('reason')}; a resume replays the same "
                                     "batches at the same learning rate and would meet it again (only --max-steps "
                                     "may change): start a new run with a lower learning_rate")
            complete, broken = complete_checkpoints(run.store.checkpoints_dir)
            for b in broken:  # set aside, so a new save of that step starts from an empty folder
                aside = b.with_name(f".incomplete-{b.name}")
                shutil.rmtree(aside, ignore_errors=True)
                os.replace(b, aside)
                log.warning("workbench: skipping incomplete checkpoint %s (its save did not finish; moved to %s)",
                            b.name, aside.name)
            run.checkpoint = complete[-1] if complete else None
            if max_steps is not None and max_steps != old_max:
                if max_steps < run.checkpoint_step:
                    raise WorkbenchError(f"--max-steps {max_steps} is below the {run.checkpoint_step} steps "
                                         f"{path} already checkpointed")
                run.config = {**info.config, "max_steps": max_steps,
                              "resumes": [*info.config.get("resumes", []),
                                          {"at_step": run.checkpoint_step, "max_steps": [old_max, max_steps]}]}
                write_json_atomic(path / CONFIG, run.config)
            run.store.truncate_after(run.checkpoint_step)
            run.store.stop_file.unlink(missing_ok=True)
            (path / SUMMARY).unlink(missing_ok=True)  # reads "interrupted" until this session finishes
        except BaseException:
            run._lock.release()
            raise
        return run

    @classmethod
    def follow(cls, path: str | Path, config: dict, checkpoint: str | None = None) -> "Run":
        """A non-main rank's view of the run the main process opened (path, config and resume
        checkpoint come from it): it reports stop requests and joins collective saves only."""
        run = cls(path, config)
        run.main = False
        run.checkpoint = Path(checkpoint) if checkpoint else None
        return run

    @property
    def checkpoint_step(self) -> int:
        return _checkpoint_step(self.checkpoint) if self.checkpoint else 0

    @property
    def checkpoints_dir(self) -> Path:
        return self.store.checkpoints_dir

    # ---- records and stop ---------------------------------------------------------------
    def emit(self, rec: MetricsRecord) -> None:
        self.step = max(self.step, rec.step)
        if not self.main:  # the main process records the run (its logged loss is already the global mean)
            return
        self.store.append(rec)
        self.records.append(rec)
        for fn in self.listeners:
            fn(rec)

    def emit_start(self, step: int, max_steps: int) -> None:
        """The START event: where training (re)starts, with the trainable share etc."""
        self.emit(MetricsRecord(step, Kind.EVENT, {"event": Event.START, "max_steps": max_steps, **self.start_info}))

    def emit_end(self, step: int) -> None:
        self.emit(MetricsRecord(step, Kind.EVENT, {"event": Event.END}))

    def stop_requested(self) -> bool:
        """This process's own view; RunCallback combines every rank's (see distributed.any_rank)."""
        return (self.stop_event is not None and self.stop_event.is_set()) or self.store.stop_file.exists()

    def attach(self, trainer, *, step_offset: int = 0, token_offset: int = 0, max_steps: int | None = None,
               extra: dict | None = None, sampler: Callable | None = None, lifecycle: bool = True,
               checkpoints: bool = True):
        """Hook a transformers/TRL Trainer to this run through one callback (and drop the
        trainer's raw-dict printer). step_offset/token_offset shift the trainer's own
        counters onto the run's axis; `extra` values join every train/eval record;
        `lifecycle` sends the start/end events; `checkpoints` seals the trainer's
        checkpoints and saves one when stopped. Returns the callback."""
        from transformers import PrinterCallback

        from .callback import RunCallback

        cb = RunCallback(self, step_offset=step_offset, token_offset=token_offset, max_steps=max_steps,
                         extra=extra or {}, sampler=sampler, lifecycle=lifecycle, checkpoints=checkpoints)
        trainer.add_callback(cb)
        trainer.remove_callback(PrinterCallback)  # our records replace its raw dict prints
        return cb

    # ---- checkpoints and weights ---------------------------------------------------------
    def save_checkpoint(self, step: int, save: Callable[[str], None], meta: dict | None = None, keep: int = 1) -> Path:
        """For producers that are not a Trainer (the on-policy coordinator): `save(dir)`
        writes into a temporary folder, which is sealed and renamed to checkpoint-<step>;
        older checkpoints beyond `keep` are removed."""
        d = self.checkpoints_dir / f"{CHECKPOINT_PREFIX}{step}"
        if not self.main:
            return d
        tmp = d.with_name(f".{d.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save(str(tmp))
        seal_checkpoint(tmp, step=step, **(meta or {}))
        shutil.rmtree(d, ignore_errors=True)
        os.replace(tmp, d)
        complete, _ = complete_checkpoints(self.checkpoints_dir)
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return d

    def checkpoint_meta(self) -> dict:
        """What save_checkpoint recorded with the checkpoint a resume starts from."""
        if not self.checkpoint:
            return {}
        return json.loads((self.checkpoint / COMPLETE).read_text() or "{}")

    def save_final(self, save: Callable[[str], None]) -> Path:
        """`save(dir)` writes the weights into a temporary folder; pickles are dropped and
        the folder replaces final/ in one rename."""
        final = self.path / FINAL
        tmp = self.path / f".{FINAL}.tmp"
        if self.main:
            shutil.rmtree(tmp, ignore_errors=True)
        # Every rank calls save: under FSDP gathering the full weights is collective. The
        # Trainer writes on the main process only; the barriers keep the rename after it.
        distributed.barrier()
        save(str(tmp))
        distributed.barrier()
        if not self.main:
            return final
        for f in tmp.iterdir():
            if f.is_file() and f.suffix in _NOT_SHAREABLE:
                f.unlink()
        old = self.path / f".{FINAL}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def final_from_checkpoint(self, extra_save: Callable[[str], None] | None = None) -> Path:
        """A run whose last checkpoint already reached max_steps (killed during its final
        save): its weights become final/ without training again."""
        assert self.checkpoint is not None
        if not self.main:
            return self.save_final(lambda d: None)

        def save(d: str) -> None:
            copy_shareable(self.checkpoint, Path(d))
            if extra_save:
                extra_save(d)
        return self.save_final(save)

    # ---- ending ---------------------------------------------------------------------------
    def finish(self, steps: int, extra: dict | None = None, runtime_s: float | None = None) -> RunResult:
        """Write summary.json from every record of the run (earlier sessions included),
        release the lock, and return the result."""
        if not self.main:
            return self._follower_result(steps)
        recs = [MetricsRecord.from_json(r) for r in read_jsonl(self.path / METRICS)]
        train = [r for r in recs if r.kind is Kind.TRAIN and r.get("loss") is not None]
        evals = [r for r in recs if r.kind is Kind.EVAL and r.get("eval_loss") is not None]
        last_eval = next((r for r in reversed(recs) if r.kind is Kind.EVAL), None)
        tps = [r.get("tokens_per_s") for r in train if r.get("tokens_per_s")]
        if self.nan_step is not None:
            status = "failed"
            reason = f"loss became NaN at step {self.nan_step} (try a lower learning_rate)"
            if self.weights_not_finite:
                reason += ("; its weights were no longer finite and were not saved"
                           + (" (final/ holds those of an earlier session)" if (self.path / FINAL).is_dir() else ""))
        elif self.stopped_at is not None:
            status, reason = "stopped", f"stopped at step {self.stopped_at}"
        else:
            status, reason = "completed", ""
        summary = {
            "status": status, "reason": reason, "steps": steps, "max_steps": self.config.get("max_steps"),
            **({"nan_step": self.nan_step} if self.nan_step is not None else {}),
            "train_loss": train[-1].get("loss") if train else None,
            "first_train_loss": train[0].get("loss") if train else None,
            "eval_loss": evals[-1].get("eval_loss") if evals else None,
            # Every number the last evaluation logged (ranking accuracy, task accuracy, KL, …).
            "final_eval": {k: v for k, v in (last_eval.values if last_eval else {}).items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)},
            "tokens_per_s": round(sum(tps) / len(tps), 1) if tps else None,
            "runtime_s": None if runtime_s is None else round(runtime_s, 1),
            **self.start_info, **(extra or {}),
        }
        if (self.path / FINAL).is_dir():
            summary["weights"] = FINAL
        summary = {k: _finite(v) for k, v in summary.items()}
        self.store.write_summary(summary)
        self._finished = True
        self.close()
        return RunResult(run_dir=self.path, status=status, summary=summary, records=self.records)

    def _follower_result(self, steps: int) -> RunResult:
        status = "failed" if self.nan_step is not None else "stopped" if self.stopped_at is not None else "completed"
        self._finished = True
        return RunResult(run_dir=self.path, status=status, summary={"status": status, "steps": steps})

    def fail(self, exc: BaseException) -> None:
        """Record why the run ended early (best effort: the disk may be what failed)."""
        if not self.main:
            return
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        try:
            complete, _ = complete_checkpoints(self.checkpoints_dir)
            self.store.write_summary({"status": status, "reason": reason.splitlines()[0][:500],
                                      "steps": max(self.step, self.checkpoint_step),
                                      "max_steps": self.config.get("max_steps"),
                                      "resume_from": complete[-1].name if complete else None, **self.start_info})
        except OSError:
            pass

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and not self._finished:
            self.fail(exc)
        self.close()

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"
