"""lm-evaluation-harness underneath: its task manager (with our built-in task configs on the
include path), its HFLM wrapper over the model we already loaded, and its evaluator.
Nothing here re-implements a metric: the harness builds the requests, runs the model and
aggregates (mean, perplexity, stderr)."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from pathlib import Path

from ..errors import WorkbenchError, did_you_mean
from .config import BUILTIN_TASKS, EvalConfig

TASKS_DIR = Path(__file__).parent / "tasks"
_MANAGERS: dict[bool, object] = {}


def _quiet():
    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)


def bars_off() -> bool:
    """Not on a terminal (a notebook kernel, papermill, a CI log)."""
    return not sys.stderr.isatty()


@contextlib.contextmanager
def _swapped(module, name: str, make):
    """module.<name> replaced by make(original) for the block. The original is remembered once
    per module attribute, so overlapping calls (the app evaluates in threads) always put the
    harness's own object back, never another call's stand-in."""
    original = module.__dict__.setdefault(f"_workbench_real_{name}", getattr(module, name))
    setattr(module, name, make(original))
    try:
        yield
    finally:
        setattr(module, name, original)


def _request_building_bars():
    """The harness draws a bar while it builds each task's requests and gives no switch for
    it; off the terminal, swap its module's tqdm for a disabled one for the call."""
    if not bars_off():
        return contextlib.nullcontext()
    from lm_eval.api import task as task_module

    return _swapped(task_module, "tqdm", lambda real: functools.partial(real, disable=True))


def _no_env_report(storage: dict) -> None:
    storage["pretty_env_info"] = "not collected by the workbench (see workbench/evaluation/harness.py)"


@contextlib.contextmanager
def _without_env_report():
    """simple_evaluate ends by adding torch's collect_env report to its results: 11 subprocesses
    (pip list, nvidia-smi, …), 0.6–0.75 s and ~0.65 s of CPU per call, measured, i.e. per task
    and per in-training evaluation. It also runs `git describe` in the working directory, which
    outside a git repository prints "fatal: not a git repository" to the user's terminal.
    Nothing of either is kept (results.py records the package versions itself), so the call
    gets stand-ins."""
    from lm_eval import evaluator

    with _swapped(evaluator, "add_env_info", lambda real: _no_env_report), \
            _swapped(evaluator, "get_git_commit_hash", lambda real: lambda: None):
        yield


def task_manager(with_hub: bool):
    """The harness's TaskManager over our task configs; with_hub adds its ~10k hub tasks
    (indexing them takes a few seconds, so only when a non-built-in task is named)."""
    if with_hub not in _MANAGERS:
        _quiet()
        from lm_eval.tasks import TaskManager

        _MANAGERS[with_hub] = TaskManager(include_path=str(TASKS_DIR), include_defaults=with_hub)
    return _MANAGERS[with_hub]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or \
        os.environ.get("HF_DATASETS_OFFLINE", "0").lower() in ("1", "true", "yes")


_HUB_WORDS: set[str] = set()


def _maybe_hub_task(name: str) -> bool:
    """False when `name` appears in none of the harness's task configs (a quick text scan,
    ~1 s, instead of indexing ~15k tasks, ~20 s, just to say a name is unknown)."""
    if not _HUB_WORDS:
        import re

        import lm_eval

        for p in (Path(lm_eval.__file__).parent / "tasks").rglob("*.yaml"):
            _HUB_WORDS.update(re.findall(r"[A-Za-z0-9_.\-]+", p.read_text(errors="replace")))
    return name in _HUB_WORDS


def _unknown(name: str) -> WorkbenchError:
    return WorkbenchError(f"unknown task {name!r}{did_you_mean(name, BUILTIN_TASKS)}; built-in: "
                          f"{', '.join(BUILTIN_TASKS)} (or any lm-eval task name)")


def load_task(name: str, config: EvalConfig):
    """The harness's loaded task (its data read) — or one line saying why not."""
    if name not in BUILTIN_TASKS and not _maybe_hub_task(name):
        raise _unknown(name)
    tm = task_manager(with_hub=name not in BUILTIN_TASKS)
    if name not in tm.all_tasks:
        raise _unknown(name)
    try:
        loaded = tm.load([name])
    except WorkbenchError:
        raise
    except Exception as e:  # the harness/datasets raise many types for missing data
        if name not in BUILTIN_TASKS and _offline():
            raise WorkbenchError(f"task {name!r}: its data is not available offline (HF_HUB_OFFLINE=1) and not "
                                 "in the local datasets cache; run once with internet access") from None
        raise WorkbenchError(f"task {name!r}: cannot load its data ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
    for t in loaded["tasks"].values():
        if t.config.unsafe_code and not config.allow_code_execution:
            raise WorkbenchError(f"task {name!r} runs model-written code; pass --allow-code-execution "
                                 "(allow_code_execution=True) to run it")
    return loaded


def _lm_class():
    from lm_eval.models.huggingface import HFLM

    from ..analysis.prompts import URIAL_EXAMPLES, URIAL_SYSTEM

    class WorkbenchLM(HFLM):
        """HFLM over an already-loaded model (PEFT adapters and merged runs included).
        URIAL (`urial:<model>`): the in-context alignment prompt goes before every context —
        as a system turn and example turns when a chat template is applied, else in the
        paper's plain-text format."""

        def __init__(self, side, *, urial_plain: bool, **kw):
            super().__init__(pretrained=side.model, tokenizer=side.tokenizer, **kw)
            self._urial = side.urial
            self._plain_prefix = ""
            if side.urial and urial_plain:
                self._plain_prefix = (f"# Instruction\n\n{URIAL_SYSTEM}\n\n" + "".join(
                    f"# Query:\n```\n{q}\n```\n\n# Answer:\n```\n{a}\n```\n\n" for q, a in URIAL_EXAMPLES))

        def apply_chat_template(self, chat_history, add_generation_prompt=True):
            if self._urial:
                shots = [m for q, a in URIAL_EXAMPLES
                         for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
                rest = [m for m in chat_history if m.get("role") != "system"]
                chat_history = [{"role": "system", "content": URIAL_SYSTEM}, *shots, *rest]
            return super().apply_chat_template(chat_history, add_generation_prompt)

        def _prefix(self, requests):
            if self._plain_prefix:
                for r in requests:
                    r.arguments = (self._plain_prefix + r.arguments[0],) + tuple(r.arguments[1:])
            return requests

        # The harness's per-request bars help on a terminal; in a notebook or a CI log they are
        # noise next to our own one bar per (model, task).
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood(self._prefix(requests), disable_tqdm=disable_tqdm or bars_off())

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm or bars_off())

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
            # the rolling (perplexity) path calls this with its bar always on
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm or bars_off(),
                                                 override_bs=override_bs)

        def generate_until(self, requests, disable_tqdm: bool = False):
            return super().generate_until(self._prefix(requests), disable_tqdm=disable_tqdm or bars_off())

    return WorkbenchLM


def make_lm(side, config: EvalConfig):
    """The harness's LM for one resolved side (workbench.analysis.resolve.Side)."""
    _quiet()
    tok = side.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    use_chat = chat_template_on(side, config)
    kw = {"batch_size": config.batch_size}
    if config.max_length:
        kw["max_length"] = config.max_length
    side.model.eval()
    return _lm_class()(side, urial_plain=not use_chat, **kw)


def chat_template_on(side, config: EvalConfig) -> bool:
    has = bool(getattr(side.tokenizer, "chat_template", None))
    if config.chat_template == "on" and not has:
        raise WorkbenchError(f"{side.name}: its tokenizer has no chat template (chat_template='on')")
    return has if config.chat_template == "auto" else config.chat_template == "on"


def run_task(lm, name: str, config: EvalConfig, *, chat: bool = False) -> dict:
    """Run the harness's simple_evaluate on one task (checked before by load_task) with any
    harness LM; returns its results dict (results, versions, n-samples, higher_is_better…)."""
    from lm_eval import simple_evaluate

    with _request_building_bars(), _without_env_report():
        out = simple_evaluate(
            model=lm, tasks=[name], task_manager=task_manager(with_hub=name not in BUILTIN_TASKS),
            limit=config.limit, num_fewshot=config.num_fewshot, bootstrap_iters=config.bootstrap_iters,
            log_samples=False, apply_chat_template=chat, fewshot_as_multiturn=chat,
            random_seed=config.seed, numpy_random_seed=config.seed, torch_random_seed=config.seed,
            fewshot_random_seed=config.seed, confirm_run_unsafe_code=config.allow_code_execution)
    if out is None:
        raise WorkbenchError("the harness returned no results")
    return out
