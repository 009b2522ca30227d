"""Harness evaluations during training: every `every` steps (and at the last step) the model
being trained is evaluated on the run's `eval_tasks` with a small limit, and the scores go to
the run as Kind.EVAL records (harness/<task>/<metric>), so accuracy curves appear next to the
loss in the app, the run store and reports."""
from __future__ import annotations

from transformers import TrainerCallback


class HarnessEvalCallback(TrainerCallback):
    def __init__(self, run, config, tokenizer, every: int):
        self.run, self.config, self.tokenizer, self.every = run, config, tokenizer, every

    def _evaluate(self, model, step: int) -> None:
        from .api import evaluate

        result = evaluate((model, self.tokenizer), config=self.config, write=False)  # restores train mode
        for rec in result.records(step):
            self.run.emit(rec)

    def on_train_begin(self, args, state, control, model=None, **kw):
        if state.global_step == 0:  # the starting point of the curves (not again on resume)
            self._evaluate(model, 0)

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step % self.every == 0 or state.global_step >= state.max_steps:
            self._evaluate(model, state.global_step)
