"""The evaluation settings: one dataclass for the CLI, Python, the app and callbacks."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import WorkbenchError

VERIFIABLE_TASKS = ("wb_arithmetic", "wb_word_problem", "wb_count_letters", "wb_count_words", "wb_sorting",
                    "wb_unit_conversion", "wb_string_transform")
BUILTIN_TASKS = VERIFIABLE_TASKS + ("wb_stdlib_docs", "wb_preferences", "wb_humaneval", "wb_humaneval_sampled")
CODE_TASKS = ("wb_humaneval", "wb_humaneval_sampled")
# Shorthands a user may name instead of tasks.
# "builtin": every built-in task but the sampled (10x) HumanEval — and without HumanEval at all
# unless code execution is allowed.
ALIASES = {
    "builtin": BUILTIN_TASKS[:-1],
    "verifiable": VERIFIABLE_TASKS,
}
# family name of workbench.data.tasks -> its task
FAMILY_TASK = {t.removeprefix("wb_"): t for t in VERIFIABLE_TASKS}


@dataclass
class EvalConfig:
    """How to evaluate. Field docs are the help texts of the CLI and the app's form."""
    tasks: list[str] = field(default_factory=lambda: ["wb_arithmetic", "wb_preferences"])
    """task names: built-in wb_* tasks, the aliases 'builtin' / 'verifiable', or any lm-eval task (needs internet)"""
    limit: int | None = None
    """at most this many examples per task (None: all)"""
    batch_size: int = 8
    """requests per forward pass"""
    allow_code_execution: bool = False
    """run model-written code (HumanEval) in a limited subprocess; required by code tasks"""
    chat_template: str = "auto"
    """'auto' (apply the tokenizer's chat template when it has one), 'on' or 'off'"""
    num_fewshot: int | None = None
    """few-shot examples for hub tasks (None: the task's default; built-in tasks are zero-shot)"""
    max_length: int | None = None
    """context length in tokens (None: the model's)"""
    bootstrap_iters: int = 1000
    """bootstrap resamples for the stderr of non-mean metrics (perplexity); 0 skips them"""
    seed: int = 1234
    """seed for sampling and few-shot selection"""

    def __post_init__(self):
        if isinstance(self.tasks, str):
            self.tasks = [t for t in self.tasks.split(",")]

    def validate(self) -> "EvalConfig":
        """Expand aliases and check every knob; one-line WorkbenchError on a bad one."""
        tasks = []
        for t in self.tasks:
            t = str(t).strip()
            if not t:
                continue
            for name in ALIASES.get(t, (t,)):
                if t == "builtin" and name in CODE_TASKS and not self.allow_code_execution:
                    continue
                if name not in tasks:
                    tasks.append(name)
        if not tasks:
            raise WorkbenchError("no tasks given; name at least one, e.g. --tasks wb_arithmetic,wb_preferences")
        self.tasks = tasks
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)
                                       or self.limit < 1):
            raise WorkbenchError(f"limit must be a whole number ≥ 1 (or none for all examples), got {self.limit!r}")
        if self.batch_size < 1:
            raise WorkbenchError(f"batch_size must be ≥ 1, got {self.batch_size}")
        if self.chat_template not in ("auto", "on", "off"):
            raise WorkbenchError(f"chat_template must be auto, on or off, got {self.chat_template!r}")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise WorkbenchError(f"num_fewshot must be ≥ 0, got {self.num_fewshot}")
        if self.max_length is not None and self.max_length < 16:
            raise WorkbenchError(f"max_length must be ≥ 16, got {self.max_length}")
        if self.bootstrap_iters < 0:
            raise WorkbenchError(f"bootstrap_iters must be ≥ 0, got {self.bootstrap_iters}")
        code = [t for t in self.tasks if t in CODE_TASKS]
        if code and not self.allow_code_execution:
            raise WorkbenchError(f"task {code[0]} runs model-written code; pass --allow-code-execution "
                                 "(allow_code_execution=True) to run it in a limited subprocess")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
