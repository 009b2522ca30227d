"""What a decoding strategy is: a config dataclass of knobs (driving `--set knob=v`, YAML,
papermill parameters and the widget form, as for methods), a one-line summary, a doc card
(docs/decoding.md) and a class that turns prompts into generations.

Every knob is checked in the dataclass's `__post_init__`, so a bad knob fails before any
model is loaded. Errors name the knob as `strategy.<knob>`."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UnknownNameError, WorkbenchError

# Defaults of the knobs every strategy shares; a strategy may change a default by
# redeclaring the field (best-of-N samples by default).


def knob(default, help: str, **kw):
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class DecodeArgs:
    """Knobs shared by every strategy: how many tokens, and how each token is drawn."""
    max_new_tokens: int = knob(64, "most tokens generated per reply")
    sample: bool = knob(False, "sample (true) or greedy decoding (false)")
    temperature: float = knob(1.0, "sampling temperature (sample=true only)")
    top_p: float = knob(1.0, "nucleus sampling: keep the smallest set of tokens with this much mass (1 = off)")
    top_k: int = knob(0, "sample only among the k most likely tokens (0 = off)")
    seed: int = knob(0, "random seed (torch.manual_seed before each generate call)")

    def __post_init__(self):
        from ..methods.base import check_choices

        check_choices(self, prefix="strategy")
        if self.max_new_tokens < 1:
            raise WorkbenchError(f"strategy.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise WorkbenchError(f"strategy.temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise WorkbenchError(f"strategy.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise WorkbenchError(f"strategy.top_k must be >= 0, got {self.top_k}")

    def generate_kwargs(self) -> dict[str, Any]:
        """model.generate keywords for the token draw (None silences the model's own
        sampling defaults when decoding greedily)."""
        if not self.sample:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": self.top_k or None}


@dataclass(frozen=True)
class StrategySpec:
    name: str
    config_cls: type          # a DecodeArgs subclass (metadata["help"] per knob)
    summary: str              # one line for listings
    factory: type             # Strategy subclass: factory(decoder, config)
    paper: str = ""

    @property
    def card(self) -> str:
        """This strategy's section of docs/decoding.md (paper, formula, knobs, what to watch)."""
        doc = Path(__file__).resolve().parents[2] / "docs" / "decoding.md"
        if doc.is_file():
            text = doc.read_text(encoding="utf-8")
            m = re.search(rf"^## `{re.escape(self.name)}`.*?(?=^## |\Z)", text, re.S | re.M)
            if m:
                return m.group(0).strip()
        return self.summary


_STRATEGIES: dict[str, StrategySpec] = {}


def register(spec: StrategySpec) -> StrategySpec:
    """Add a strategy. A name already taken by a different strategy is refused; the same
    definition again (a re-imported module) replaces itself."""
    from ..methods.base import same_definition

    known = _STRATEGIES.get(spec.name)
    if known is not None and known is not spec and not same_definition(known, spec, "config_cls", "factory"):
        raise WorkbenchError(f"decoding strategy {spec.name!r} is already registered "
                             f"(by {known.factory.__module__}); choose another name")
    _STRATEGIES[spec.name] = spec
    return spec


def get_strategy(name: str) -> StrategySpec:
    _load_all()
    if name not in _STRATEGIES:
        raise UnknownNameError("decoding strategy", str(name), _STRATEGIES)
    return _STRATEGIES[name]


def list_strategies() -> list[StrategySpec]:
    _load_all()
    return list(_STRATEGIES.values())


def strategy_config(name: str, args: Any = None, **knobs) -> DecodeArgs:
    """The config dataclass of strategy `name` from a dict (YAML, --set, papermill), an
    instance, or keywords; unknown knobs and wrong types fail with one line."""
    from ..config import dataclass_from_args

    spec = get_strategy(name)
    if isinstance(args, DecodeArgs):
        if not isinstance(args, spec.config_cls):
            raise WorkbenchError(f"strategy {name!r} takes {spec.config_cls.__name__}, "
                                 f"got {type(args).__name__}")
        return dataclasses.replace(args, **knobs) if knobs else args
    if args is not None and not isinstance(args, dict):
        raise WorkbenchError(f"strategy knobs must be a mapping, got {type(args).__name__}")
    return dataclass_from_args(spec.config_cls, {**(args or {}), **knobs}, where="strategy")


def _load_all() -> None:
    from . import strategies  # noqa: F401  (each strategy module calls `register`)
