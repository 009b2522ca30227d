"""Reward functions with TRL's reward-function signature `fn(prompts, completions, **columns)
-> list[float]`, so the same objects score the on-policy loop's samples and drive TRL's
GRPO/RLOO. Completions may be text or a list of assistant messages (TRL's conversational
form); extra dataset columns (`answer`, `task`, …) arrive as keyword lists.

A reward spec names one or more rewards and their weights:
  "correct"                                  one reward, weight 1
  "correct,format"                           several, weight 1 each
  {"correct": 1.0, "format": 0.2}            name → weight
  [{"name": "length", "weight": 0.5, "max_words": 40}, "correct"]   with each reward's knobs
  {"python": {"function": "my_rewards.py:score"}}                   your own function

A `python` reward imports your file or module, which *executes its top-level code* in the
training process (as `import` does): it is a code-execution opt-in, so name only files you
trust. `check_rewards` only checks that the file exists and compiles; nothing runs until
the rewards are built.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..data import tasks
from ..errors import UnknownNameError, WorkbenchError

RewardFn = Callable[..., list[float]]


def _texts(completions) -> list[str]:
    return [tasks.completion_text(c) for c in completions]


# ---------------------------------------------------------------- the built-in rewards

def correct(partial_credit: bool = True) -> RewardFn:
    """The task checker: 1 right, 0 wrong or missing (sorting: share of positions right
    unless partial_credit is off). Needs the rows' `answer` (and `task`) columns."""
    inner = tasks.make_reward_fn(partial_credit=partial_credit)

    def fn(prompts=None, completions=(), answer=None, task=None, **_):
        if answer is None:
            raise WorkbenchError("reward 'correct' needs an 'answer' column in the data (verifiable rows)")
        return inner(list(completions), answer, task)
    return fn


def format_rule(pattern: str = r"(?im)^\s*answer\s*:\s*\S") -> RewardFn:
    """1 when the completion matches `pattern` (default: a line starting 'Answer:'), else 0."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise WorkbenchError(f"reward 'format': pattern {pattern!r} is not a valid regex ({e})") from None

    def fn(prompts=None, completions=(), **_):
        return [float(bool(rx.search(t))) for t in _texts(completions)]
    return fn


def length_rule(min_words: int = 0, max_words: int = 100) -> RewardFn:
    """1 inside [min_words, max_words]; outside, falls linearly to 0 at a distance of
    max_words (so a reply twice the limit scores 0)."""
    if min_words < 0 or max_words < max(min_words, 1):
        raise WorkbenchError(f"reward 'length': need 0 <= min_words <= max_words and max_words >= 1, "
                             f"got {min_words}, {max_words}")

    def fn(prompts=None, completions=(), **_):
        out = []
        for t in _texts(completions):
            n = len(t.split())
            dist = max(min_words - n, n - max_words, 0)
            out.append(max(0.0, 1.0 - dist / max_words))
        return out
    return fn


def keywords(include: Sequence[str] = (), exclude: Sequence[str] = (), case_sensitive: bool = False) -> RewardFn:
    """Share of `include` words present minus share of `exclude` words present (in [-1, 1])."""
    if isinstance(include, str) or isinstance(exclude, str):
        include = [include] if isinstance(include, str) else include
        exclude = [exclude] if isinstance(exclude, str) else exclude
    if not include and not exclude:
        raise WorkbenchError("reward 'keywords': give at least one word in include or exclude")
    norm = (lambda s: s) if case_sensitive else str.lower

    def share(words, text):
        return sum(norm(w) in text for w in words) / len(words) if words else 0.0

    def fn(prompts=None, completions=(), **_):
        return [share(include, norm(t)) - share(exclude, norm(t)) for t in _texts(completions)]
    return fn


def check_python_function(function: str | Callable = "") -> None:
    """Check a `python` reward's function spec without running anything: the form, and
    that a file exists and compiles or that a module can be found."""
    if callable(function):
        return
    if not isinstance(function, str) or ":" not in function:
        raise WorkbenchError(f"reward 'python': function must be 'module:name' or 'file.py:name', got {function!r}")
    where, name = function.rsplit(":", 1)
    if not name.isidentifier():
        raise WorkbenchError(f"reward 'python': {name!r} in {function!r} is not a Python function name")
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise WorkbenchError(f"reward 'python': file {path} does not exist"
                                 + (" as a regular file" if path.exists() else ""))
        try:
            source = path.read_bytes()
            compile(source, str(path), "exec", dont_inherit=True)
        except SyntaxError as e:
            raise WorkbenchError(f"reward 'python': {path} line {e.lineno} does not compile "
                                 f"({type(e).__name__}: {e.msg})") from None
        except (OSError, ValueError) as e:
            raise WorkbenchError(f"reward 'python': cannot read {path} ({type(e).__name__}: {e})") from None
        return
    top = where.split(".")[0]
    try:
        found = bool(top) and importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise WorkbenchError(f"reward 'python': no module named {top!r} (for a file, give path/to/file.py:{name})")


def python_callable(function: str | Callable = "") -> RewardFn:
    """A user function `fn(prompts, completions, **columns) -> list[float]`, given as a
    callable, "package.module:name" or "path/to/file.py:name".

    Loading it executes the file's (or module's) top-level code, as `import` does: a
    code-execution opt-in, so name only files you trust."""
    if callable(function):
        return _wrapped(function)
    check_python_function(function)
    where, name = function.rsplit(":", 1)
    try:
        if where.endswith(".py"):
            path = Path(where).expanduser()
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as e:
        raise WorkbenchError(f"reward 'python': cannot import {where!r} ({e})") from None
    except Exception as e:  # the user's top-level code failed
        raise WorkbenchError(f"reward 'python': loading {where!r} failed ({type(e).__name__}: {e})") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise WorkbenchError(f"reward 'python': {where!r} has no function {name!r}")
    return _wrapped(fn)


def _wrapped(user_fn: Callable) -> RewardFn:
    # our own function object, so naming it for TRL's logs never renames the user's
    def fn(*args, **kwargs):
        return user_fn(*args, **kwargs)
    return fn


def reward_model(path: str = "", batch_size: int = 8, max_length: int = 512) -> RewardFn:
    """Scores from a sequence-classification reward model (e.g. one made with
    `workbench.onpolicy.train_reward_model`)."""
    from .reward_model import RewardModelScorer

    scorer = RewardModelScorer(path, batch_size=batch_size, max_length=max_length)

    def fn(prompts=None, completions=(), **_):
        if prompts is None:
            raise WorkbenchError("reward 'reward_model' needs the prompts")
        return scorer.score(list(prompts), _texts(completions))
    return fn


REWARDS: dict[str, Callable[..., RewardFn]] = {
    "correct": correct, "format": format_rule, "length": length_rule, "keywords": keywords,
    "python": python_callable, "reward_model": reward_model,
}


# ---------------------------------------------------------------- specs

@dataclass
class Reward:
    name: str
    weight: float
    fn: RewardFn


def _entries(spec) -> list[tuple[str, float, dict]]:
    if callable(spec):
        return [("python", 1.0, {"function": spec})]
    if isinstance(spec, str):
        return [(s.strip(), 1.0, {}) for s in spec.split(",") if s.strip()]
    if isinstance(spec, dict):
        out = []
        for name, v in spec.items():
            if isinstance(v, dict):
                v = dict(v)
                out.append((name, v.pop("weight", 1.0), v))
            else:
                out.append((name, v, {}))
        return out
    if isinstance(spec, (list, tuple)):
        out = []
        for item in spec:
            if isinstance(item, dict):
                item = dict(item)
                if "name" not in item:
                    raise WorkbenchError(f"reward spec {item!r}: missing 'name'")
                out.append((item.pop("name"), item.pop("weight", 1.0), item))
            else:
                out += _entries(item)
        return out
    raise WorkbenchError(f"reward spec must be a name, list or mapping, got {type(spec).__name__}")


def check_rewards(spec) -> list[tuple[str, float, dict]]:
    """Validate a reward spec (names, weights, knob names) without building anything:
    (name, weight, knobs) per reward."""
    entries = []
    for name, weight, knobs in _entries(spec):
        if name not in REWARDS:
            raise UnknownNameError("reward", name, REWARDS)
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise WorkbenchError(f"reward {name!r}: weight must be a number, got {weight!r}") from None
        params = inspect.signature(REWARDS[name]).parameters
        unknown = [k for k in knobs if k not in params]
        if unknown:
            raise WorkbenchError(f"reward {name!r}: unknown knob {unknown[0]!r}; knobs: {', '.join(params) or 'none'}")
        if name == "python":
            check_python_function(knobs.get("function", ""))
        entries.append((name, weight, knobs))
    if not entries:
        raise WorkbenchError("reward spec is empty: name at least one reward (e.g. 'correct')")
    return entries


def build_rewards(spec) -> list[Reward]:
    """Reward spec → list of named, weighted reward functions (see module docstring)."""
    rewards = []
    for name, weight, knobs in check_rewards(spec):
        fn = REWARDS[name](**knobs)
        try:
            fn.__name__ = name  # TRL logs rewards/<__name__>
        except (AttributeError, TypeError):
            pass
        rewards.append(Reward(name, weight, fn))
    return rewards


def score(rewards: list[Reward], prompts: list, completions: list, columns: dict[str, list] | None = None
          ) -> tuple[list[float], dict[str, list[float]]]:
    """Weighted sum of every reward per completion, plus each reward's own scores."""
    columns = columns or {}
    parts: dict[str, list[float]] = {}
    total = [0.0] * len(completions)
    for r in rewards:
        values = r.fn(prompts=prompts, completions=completions, **columns)
        values = [float("nan") if v is None else float(v) for v in values]
        if len(values) != len(completions):
            raise WorkbenchError(f"reward {r.name!r} returned {len(values)} scores for {len(completions)} completions")
        if any(math.isnan(v) for v in values):
            raise WorkbenchError(f"reward {r.name!r} returned None/NaN for some completions")
        parts[r.name] = values
        total = [t + r.weight * v for t, v in zip(total, values)]
    return total, parts


def column_lists(rows: list[dict], exclude: Sequence[str] = ("prompt",)) -> dict[str, list]:
    """Rows → {column: [values]} (what TRL hands reward functions as keyword arguments)."""
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in exclude]
    return {k: [r.get(k) for r in rows] for k in keys}
