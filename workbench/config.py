"""TrainConfig: the common knobs of every run. Method knobs live in the method's own
dataclass (workbench.methods.<name>), PEFT knobs in PEFT's config dataclass; both are
given here as plain dicts (`method_args`, `peft_args`) so one YAML file, one set of
papermill parameters or one widget form describes a whole run.

The same fields drive the CLI flags, `--set key=value` overrides (`method.beta=0.2`,
`peft.r=16`), YAML files and the widget forms: each field's help text is in its metadata.
"""
from __future__ import annotations

import dataclasses
import json
import math
import operator
import re
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UnknownNameError, WorkbenchError


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string; YAML 1.2 and every user mean a
    number. Adds 1.2's float form on top of the safe loader's rules, and refuses a key given twice
    in one mapping (PyYAML keeps the last silently; YAML says keys are unique)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden by the keys after it
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def load_yaml(text: str):
    """yaml.safe_load, with `1e-3` read as a float: every YAML file, --set and -p value."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 — a SafeLoader subclass


def load_value(raw: str):
    """A `--set key=VALUE` value: YAML (`1e-3` a number, `[8, 16]` a list), or the text itself
    where it is not valid YAML (`--set seed=[1` is then refused by the knob's type, in one line)."""
    try:
        return load_yaml(raw)
    except yaml.YAMLError:
        return raw


def _f(default, help: str, **kw):
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    model: str = _f("smollm2-135m-instruct", "built-in model name, hub id (org/name), local directory or .gguf file")
    dataset: str = _f("instructions", "built-in dataset name, local file (.jsonl/.json/.csv/.parquet) or hub id")
    method: str = _f("sft", "training method (see `workbench train --list-methods`)")
    peft: str = _f("lora", "parameter-efficient method, or 'full' for full fine-tuning")
    run_dir: str | None = _f(None, "run directory (default: runs/<method>-<model>-<time>)")
    max_steps: int = _f(30, "optimizer steps")
    learning_rate: float = _f(2e-4, "peak learning rate")
    batch_size: int = _f(4, "examples per device per step")
    grad_accum: int = _f(1, "gradient accumulation steps")
    max_length: int = _f(256, "truncate examples to this many tokens")
    warmup_ratio: float = _f(0.0, "linear warm-up: below 1 a fraction of max_steps, 1 or more a number of steps")
    lr_scheduler: str = _f("linear", "transformers learning-rate schedule name")
    max_rows: int | None = _f(None, "use at most this many training rows")
    eval_rows: int = _f(16, "rows held out for eval loss (0 = no eval)")
    on_error: str = _f("raise", "malformed dataset rows: raise (stop and list them) or skip (drop them with a warning)",
                       choices=["raise", "skip"])
    eval_steps: int = _f(15, "evaluate (eval loss + samples) every N steps")
    save_steps: int = _f(10, "checkpoint every N steps (for resume)")
    logging_steps: int = _f(1, "log a metrics record every N steps")
    tracker: str = _f("", "mirror metrics, config and samples to an experiment tracker: trackio (local), "
                          "tensorboard or mlflow (empty = none)", choices=["", "trackio", "tensorboard", "mlflow"])
    eval_tasks: str = _f("", "lm-evaluation-harness tasks run every eval_steps during training, comma-separated "
                             "(e.g. wb_arithmetic,wb_preferences; empty = none)")
    eval_tasks_limit: int = _f(20, "examples per task for eval_tasks")
    sample_prompts: int = _f(2, "eval prompts to generate from at each eval (0 = none)")
    sample_max_new_tokens: int = _f(32, "max new tokens per sample")
    seed: int = _f(0, "random seed")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N | mps (must be present on this machine)")
    precision: str = _f("auto", "auto | fp32 | bf16 (auto: bf16 only where the hardware has it)")
    gradient_checkpointing: bool = _f(False, "trade compute for memory")
    selection: dict[str, Any] = _f({}, "data selection before training, e.g. {strategy: longest, fraction: 0.2}")
    method_args: dict[str, Any] = _f({}, "the method's own knobs (its config dataclass)")
    peft_args: dict[str, Any] = _f({}, "the PEFT config's knobs, e.g. {r: 16, lora_alpha: 32}")

    # ---- (de)serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "TrainConfig":
        return cls().update(data, where)

    def update(self, data: dict[str, Any], where: str = "config") -> "TrainConfig":
        """Set each key of `data` (as `set` does, checked), in order; returns self."""
        for key, value in data.items():
            self.set(key, value, where=where)
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(read_yaml_mapping(path, "config file", "config keys"), where=str(path))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    # ---- overrides -----------------------------------------------------------------
    def set(self, key: str, value: Any, where: str = "--set") -> None:
        """Set `key` (or `method.x` / `peft.x` / `selection.x`) with type checking."""
        head, _, rest = key.partition(".")
        nested = {"method": "method_args", "peft": "peft_args", "selection": "selection"}
        if rest and head in nested:
            getattr(self, nested[head])[rest] = value  # checked later against the dataclass
            return
        names = {f.name: f for f in dataclasses.fields(self)}
        if key not in names:
            raise UnknownNameError(f"config key in {where}", key, names, hint=self._key_hint(key))
        setattr(self, key, coerce(value, _type_of(names[key]), f"{where}: {key}"))

    def _key_hint(self, key: str) -> str | None:
        """Where an unknown top-level key belongs: a knob of the chosen method or PEFT type
        (`r` → `peft.r`), or TRL's / transformers' name for one of ours."""
        if key in TRL_NAMES:
            return f"the workbench calls it {TRL_NAMES[key]!r}"
        from .methods import get_method
        from .peft_menu import get_peft

        for head, lookup in (("method", get_method), ("peft", get_peft)):
            try:
                spec = lookup(getattr(self, head))
            except WorkbenchError:  # the method/PEFT name itself is wrong: validate says so
                continue
            cls = getattr(spec, "config_cls", None) or getattr(spec, "knobs_cls", None)
            if cls is not None and key in {f.name for f in dataclasses.fields(cls)}:
                return f"a knob of {head} {getattr(self, head)!r}: set it as {head}.{key}"
        return None

    def apply_flag(self, name: str, raw: str) -> None:
        """Set field `name` from a command-line flag's text (parsed as YAML); errors name
        the flag (`--learning-rate: expected a number, got 'abc'`)."""
        value = load_value(raw) if raw else ""
        names = {f.name: f for f in dataclasses.fields(self)}
        if name not in names:
            raise UnknownNameError("config key", name, names)
        setattr(self, name, coerce(value, _type_of(names[name]), "--" + name.replace("_", "-")))

    def apply_overrides(self, pairs: list[str]) -> None:
        for pair in pairs:
            if "=" not in pair:
                raise WorkbenchError(f"--set {pair!r}: expected key=value")
            key, raw = pair.split("=", 1)
            self.set(key.strip(), load_value(raw) if raw else "", where="--set")

    # ---- checks ----------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Check every common knob before anything touches the disk: one WorkbenchError
        line naming the field (as the CLI flag and the YAML key spell it) and the value.
        Method, PEFT, model and dataset names are checked by their own registries."""
        for name in ("max_steps", "batch_size", "grad_accum", "max_length",
                     "logging_steps", "eval_steps", "save_steps"):
            _check_int(name, getattr(self, name), 1)
        _check_int("eval_tasks_limit", self.eval_tasks_limit, 1)
        _check_int("seed", self.seed, 0)
        if self.seed >= 2**32:  # numpy's limit, which transformers' set_seed reaches
            raise WorkbenchError(f"seed must be below 2**32, got {self.seed}")
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise WorkbenchError(f"dataset must be a built-in name, a file or a hub id, got {self.dataset!r}")
        if not isinstance(self.eval_tasks, str):
            raise WorkbenchError(f"eval_tasks must be comma-separated task names, got {self.eval_tasks!r}")
        for name in ("sample_prompts", "sample_max_new_tokens"):
            _check_int(name, getattr(self, name), 0)
        _check_int("eval_rows", self.eval_rows, 0, " (0 = no eval)")
        if self.max_rows is not None:
            _check_int("max_rows", self.max_rows, 1, " (or empty for all rows)")
        lr = self.learning_rate
        if not _is_number(lr) or not math.isfinite(lr) or lr <= 0:
            raise WorkbenchError(f"learning_rate must be a finite positive number, got {lr!r}")
        wr = self.warmup_ratio
        if not _is_number(wr) or not math.isfinite(wr) or wr < 0:
            raise WorkbenchError(f"warmup_ratio must be a finite number >= 0 (below 1: a fraction of "
                                 f"max_steps; 1 or more: a number of warm-up steps), got {wr!r}")
        warmup = wr if wr >= 1 else math.ceil(wr * self.max_steps)
        if warmup >= self.max_steps:  # legal, but the schedule never reaches the rate asked for
            warnings.warn(f"warmup_ratio={wr} means {warmup:g} warm-up steps, not fewer than max_steps="
                          f"{self.max_steps}: the learning rate never reaches {lr:g}", ConfigWarning, stacklevel=2)
        schedules = _scheduler_names()
        if self.lr_scheduler not in schedules:
            raise UnknownNameError("lr_scheduler", str(self.lr_scheduler), schedules)
        if self.precision not in PRECISIONS:
            raise WorkbenchError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.on_error not in ON_ERROR:
            raise WorkbenchError(f"on_error must be raise or skip, got {self.on_error!r}")
        for name in ("selection", "method_args", "peft_args"):
            if not isinstance(getattr(self, name), dict):
                raise WorkbenchError(f"{name} must be a mapping, got {getattr(self, name)!r}")
        from .models.device import check_device

        check_device(self.device)
        from .tracking import check_tracker

        check_tracker(self.tracker)  # known name, and its package installed
        return self


class ConfigWarning(UserWarning):
    """A legal setting that probably does not do what was meant."""


PRECISIONS = ("auto", "fp32", "bf16", "float32", "bfloat16")
# TRL's / transformers' argument names a user coming from a TRL script types, and ours.
TRL_NAMES = {"gradient_accumulation_steps": "grad_accum", "per_device_train_batch_size": "batch_size",
             "max_seq_length": "max_length", "lr_scheduler_type": "lr_scheduler", "lr": "learning_rate",
             "model_name_or_path": "model", "output_dir": "run_dir", "dataset_name": "dataset",
             "eval_every": "eval_steps"}
ON_ERROR = ("raise", "skip")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_int(name: str, value, least: int, note: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise WorkbenchError(f"{name} must be an integer >= {least}{note}, got {value!r}")


def _scheduler_names() -> list[str]:
    """transformers' learning-rate schedule names (its SchedulerType values)."""
    from transformers.trainer_utils import SchedulerType

    return [s.value for s in SchedulerType]


def read_yaml_mapping(path: str | Path, what: str, expected: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping, or one line saying what is wrong with it."""
    path = Path(path)
    if path.is_dir():
        raise WorkbenchError(f"{what} {path} is a folder; name a YAML file")
    if not path.is_file():
        raise WorkbenchError(f"{what} {path} {'is not a regular file' if path.exists() else 'does not exist'}")
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise WorkbenchError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e.__class__.__name__})") \
            from None
    except UnicodeDecodeError as e:
        raise WorkbenchError(f"{path}: not a text file ({e.reason} at byte {e.start})") from e
    if data is None:  # an empty file (or only comments) would silently mean "all defaults"
        raise WorkbenchError(f"{path}: the {what} is empty; expected a mapping of {expected}")
    if not isinstance(data, dict):
        raise WorkbenchError(f"{path}: expected a mapping of {expected}, got {type(data).__name__}")
    return data


def _type_of(f: dataclasses.Field):
    hints = typing.get_type_hints(TrainConfig)
    return hints[f.name]


def coerce(value: Any, tp, where: str):
    """Coerce a YAML/CLI value to a dataclass field type, or say clearly what's wrong."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        if len(arms) > 1:  # try each arm, e.g. PEFT's `bool | Literal["pissa", ...]`, `str | list[str]`
            first = None
            for arm in arms:
                try:
                    return coerce(value, arm, where)
                except WorkbenchError as e:
                    first = first or e
            raise first
        tp = arms[0]
        origin = typing.get_origin(tp)
    if origin is typing.Literal:
        # exact spellings are the library's to check (PEFT accepts e.g. "pissa_niter_4")
        choices = typing.get_args(tp)
        if value in choices or (isinstance(value, str) and all(isinstance(a, str) for a in choices)):
            return value
        raise WorkbenchError(f"{where}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise WorkbenchError(f"{where}: expected a mapping, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise WorkbenchError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:  # `1e3` read as a number
            return int(value)
        if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit())):
            raise WorkbenchError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise WorkbenchError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise WorkbenchError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def dataclass_from_args(cls, args: dict[str, Any], where: str):
    """Build a method/PEFT config dataclass from a dict, rejecting unknown keys and
    wrong types with one line that names the key."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in (args or {}).items():
        if key not in fields:
            raise UnknownNameError(f"{where} key", key, fields)
        kwargs[key] = coerce(value, hints.get(key, Any), f"{where}.{key}")
        check_bounds(fields[key], kwargs[key], f"{where}.{key}")
    return cls(**kwargs)


# Field metadata that bounds a knob: name → (holds when, how the message says it).
_BOUNDS = {"min": (operator.ge, "≥"), "max": (operator.le, "≤"), "above": (operator.gt, ">"),
           "below": (operator.lt, "<")}


def differing_keys(mine: dict, theirs: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The keys (sorted) whose values differ between two mappings, a key missing from one counting
    as None there: what a second invocation changed against the first (resume, sweep folders)."""
    return sorted(k for k in (mine.keys() | theirs.keys()) - set(ignore) if mine.get(k) != theirs.get(k))


def check_bounds(f: dataclasses.Field, value, where: str) -> None:
    """A knob's range from its field metadata: `min` / `max` inclusive, `above` / `below`
    exclusive (e.g. {"min": 1} for counts, {"min": 0, "below": 2} for a cosine distance)."""
    limits = {k: f.metadata[k] for k in _BOUNDS if k in f.metadata}
    if not limits or not _is_number(value):
        return
    if not math.isfinite(value) or not all(_BOUNDS[k][0](value, limit) for k, limit in limits.items()):
        said = " and ".join(f"{_BOUNDS[k][1]} {limit}" for k, limit in limits.items())
        raise WorkbenchError(f"{where} must be {said}, got {value!r}")


def field_help(cls) -> list[tuple[str, Any, str]]:
    """(name, default, help) for each field: what CLI help and widget forms show."""
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out.append((f.name, default, f.metadata.get("help", "")))
    return out
