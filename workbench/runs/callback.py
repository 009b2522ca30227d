"""RunCallback: the one transformers callback through which a Run watches a Trainer.

Every trainer log becomes one MetricsRecord on the run's step axis; a NaN loss or a stop
request ends training (with a checkpoint, so the run can resume); each checkpoint the
trainer saves is sealed complete; samples are generated at eval points and at the end.

In a multi-process run every rank has this callback (the Trainer calls it at the same points
on each): the stop decision is combined across ranks, so all stop at the same step; the
main rank alone records and seals (every rank generates samples, which FSDP needs)."""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from transformers import TrainerCallback

from .. import distributed
from ..models.decoding import eval_decoder, release_eval_decoder
from .finite import trainable_weights_finite
from .records import Kind, MetricsRecord
from .run import seal_checkpoint

if TYPE_CHECKING:
    from .run import Run

# Keys transformers logs once at the end of training; they belong in the summary.
END_KEYS = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",
                      "train_loss"})


class RunCallback(TrainerCallback):
    def __init__(self, run: "Run", *, step_offset: int = 0, token_offset: int = 0, max_steps: int | None = None,
                 extra: dict | None = None, sampler: Callable | None = None, lifecycle: bool = True,
                 checkpoints: bool = True):
        self.run = run
        self.step_offset, self.token_offset = step_offset, token_offset
        self.max_steps = max_steps
        self.extra = dict(extra or {})
        self.sampler = sampler          # sampler(model, step) -> list of value dicts
        self.lifecycle, self.checkpoints = lifecycle, checkpoints
        self.end_stats: dict = {}
        self.tokens = 0                 # the trainer's own num_tokens at its last log
        self._last: tuple[float, float | None] | None = None  # (time, num_tokens) for tokens/s
        self._sampled: set[int] = set()

    def step(self, state) -> int:
        return state.global_step + self.step_offset

    # ---- events ---------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kw):
        self._last = (time.time(), None)
        if self.lifecycle:
            self.run.emit_start(self.step(state), self.max_steps or state.max_steps)

    def on_log(self, args, state, control, logs=None, **kw):
        logs = dict(logs or {})
        if END_KEYS & logs.keys():
            self.end_stats.update(logs)
            return
        kind = Kind.EVAL if any(k.startswith("eval_") for k in logs) else Kind.TRAIN
        if kind is Kind.TRAIN:
            now, tokens = time.time(), logs.get("num_tokens")
            last_t, last_tokens = self._last or (now, None)
            if tokens is not None and last_tokens is not None and now > last_t:
                logs["tokens_per_s"] = round((tokens - last_tokens) / (now - last_t), 1)
            self._last = (now, tokens)
            if tokens is not None:
                self.tokens = tokens
                logs["num_tokens"] = tokens + self.token_offset
            loss = logs.get("loss")
            if isinstance(loss, float) and not math.isfinite(loss) and self.run.nan_step is None:
                self.run.nan_step = self.step(state)
                control.should_training_stop = True
                control.should_save = False  # this step's update took the NaN: no checkpoint to resume into it
        logs.setdefault("epoch", state.epoch)
        self.run.emit(MetricsRecord(self.step(state), kind, {**logs, **self.extra}))
        self._check_stop(state, control)

    # Logs come after on_step_end within the same step; checking in both means a listener
    # that reacts to step N's record stops the run at N, checkpoint included.
    def on_step_end(self, args, state, control, **kw):
        self._check_stop(state, control)

    def _check_stop(self, state, control) -> None:
        # One rank stopping alone would leave the others waiting in the next gradient all-reduce.
        # (A NaN needs no vote: the logged loss is already the mean over every rank.)
        mine = self.run.stopped_at is not None or self.run.stop_requested()
        if distributed.any_rank(mine) and self.run.stopped_at is None:
            self.run.stopped_at = self.step(state)
        if self.run.stopped_at is not None:
            control.should_training_stop = True
            control.should_save = self.checkpoints and self.run.nan_step is None

    def on_save(self, args, state, control, model=None, **kw):
        # Every rank writes its own rng_state_<rank>.pth into the checkpoint: seal after all have.
        distributed.barrier()
        if not self.checkpoints:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        # The update before a NaN loss shows has usually broken the weights already: a checkpoint
        # of them would only resume into the NaN. It is removed unsealed; the previous one stays.
        if model is not None and not trainable_weights_finite(model):
            if self.run.main:
                shutil.rmtree(folder, ignore_errors=True)
            return
        if self.run.main and folder.is_dir():
            seal_checkpoint(folder, step=self.step(state))

    def on_evaluate(self, args, state, control, model=None, **kw):
        self._sample(model, state, args)

    def on_train_end(self, args, state, control, model=None, **kw):
        self._sample(model, state, args)
        if self.lifecycle:
            self.run.emit_end(self.step(state))

    def _sample(self, model, state, args) -> None:
        step = self.step(state)
        try:
            if self.sampler is None or model is None or step in self._sampled:
                return
            self._sampled.add(step)
            # Every rank generates (greedy, so the same tokens): under FSDP each forward gathers the
            # sharded weights collectively. Only the main rank's emit records them. A single process
            # decodes from the evaluation's decoding copy (merged adapter, bf16 linears under bf16).
            decoder, context = eval_decoder(model, step=state.global_step, bf16=bool(getattr(args, "bf16", False)))
            with context():
                samples = self.sampler(decoder, step)
            for values in samples:
                self.run.emit(MetricsRecord(step, Kind.SAMPLE, {**values, **self.extra}))
        finally:
            release_eval_decoder()  # the probes' copy too: training goes on with other weights
