"""What a method is: a config dataclass, the data shape it needs, a doc card, and how to
build its (TRL) trainer from a TrainContext. Each method lives in its own module (its
config dataclass and its trainer class, both at module level) and registers itself with
`register`.

Every knob is checked before the engine creates a run directory: a knob on its own (or
against the method's other knobs) in the config dataclass's `__post_init__`, as TRL's
configs do; a knob against the run's TrainConfig (e.g. KTO's batch size) in
`MethodSpec.check`. Errors name the knob as `method.<knob>`."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UnknownNameError, WorkbenchError

if TYPE_CHECKING:
    from ..training.context import TrainContext


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_cls: type                 # dataclass of the method's knobs (metadata["help"])
    data_format: str                 # canonical data shape it trains on (workbench.data)
    summary: str                     # one line for listings
    build_trainer: Callable[["TrainContext"], Any]
    family: str = "sft"              # sft | preference | online
    coordinated: bool = False        # build_trainer returns a Coordinator (several trainers), not one trainer
    peft_ok: Callable[[str], bool] = lambda peft: True  # which PEFT types make sense
    # Checks that need the run's TrainConfig as well as the method's knobs; the engine calls
    # it before the run directory exists. Raises WorkbenchError.
    check: Callable[[Any, Any], None] = lambda config, method_config: None
    # Checks of the training rows themselves (e.g. DPO pairs that max_length cuts before they
    # differ): called with (config, method_config, tokenizer, train_dataset), also before the
    # run directory exists. None: the engine does not even load the tokenizer for it.
    check_data: Callable[[Any, Any, Any, Any], None] | None = None

    @property
    def card(self) -> str:
        """The method's doc card (paper, formula, knobs, what to watch)."""
        path = resources.files("workbench.methods") / "cards" / f"{self.name}.md"
        return path.read_text() if path.is_file() else self.summary


def check_choices(knobs: Any, prefix: str = "method") -> None:
    """Every plain-`str` field whose metadata lists `choices` must hold one of them (the
    lists that drive the CLI help and the widget dropdowns)."""
    hints = typing.get_type_hints(type(knobs))
    for f in dataclasses.fields(knobs):
        choices = f.metadata.get("choices")
        value = getattr(knobs, f.name)
        if choices and hints.get(f.name) is str and value not in choices:
            raise UnknownNameError(f"{prefix}.{f.name}", str(value), choices)


@dataclass
class MethodArgs:
    """Base of the method config dataclasses: checks the `choices` of every str knob.
    Subclasses that add their own `__post_init__` call `super().__post_init__()`."""

    def __post_init__(self):
        check_choices(self)


def length_grouping(unit: str = "rows") -> Any:
    """The `group_by_length` knob (every SFT variant, the DPO family): off by default."""
    return dataclasses.field(default=False, metadata={
        "help": f"batch {unit} of similar length together (less padding, faster steps; batches are "
                "no longer a uniform shuffle)"})


def sampling_strategy(knobs: Any) -> str:
    """transformers' `train_sampling_strategy` for a method's `group_by_length` knob: its
    LengthGroupedSampler (shuffled mega-batches, each sorted by length) or a uniform shuffle."""
    return "group_by_length" if knobs.group_by_length else "random"


def positive(knobs: Any, *names: str, prefix: str = "method") -> None:
    """Each named knob must be > 0 (and not NaN)."""
    for name in names:
        value = getattr(knobs, name)
        if not value > 0:
            raise WorkbenchError(f"{prefix}.{name} must be positive, got {value}")


def at_least(knobs: Any, low: float, *names: str, prefix: str = "method") -> None:
    """Each named knob must be >= low (and not NaN)."""
    for name in names:
        value = getattr(knobs, name)
        if not value >= low:
            raise WorkbenchError(f"{prefix}.{name} must be >= {low}, got {value}")


_METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method. A name already taken by a different method is refused; registering
    the same spec again (or a re-imported module's own spec) is a no-op/replacement."""
    known = _METHODS.get(spec.name)
    if known is not None and known is not spec and not same_definition(known, spec, "config_cls", "build_trainer"):
        raise WorkbenchError(f"method {spec.name!r} is already registered (by {known.config_cls.__module__}); "
                             "choose another name")
    _METHODS[spec.name] = spec
    return spec


def same_definition(a, b, *attrs: str) -> bool:
    """Two registry entries come from the same definition (a module imported again, e.g.
    reloaded): each named attribute has the same module and qualified name. Shared by the
    registries of methods, decoding strategies and merge methods."""
    return all(getattr(x, "__module__", None) == getattr(y, "__module__", None)
               and getattr(x, "__qualname__", None) == getattr(y, "__qualname__", None)
               for x, y in ((getattr(a, n), getattr(b, n)) for n in attrs))


def get_method(name: str) -> MethodSpec:
    _load_all()
    if name not in _METHODS:
        raise UnknownNameError("method", name, _METHODS)
    return _METHODS[name]


def list_methods() -> list[MethodSpec]:
    _load_all()
    return list(_METHODS.values())


def _load_all() -> None:
    # Importing the package imports every method module (each calls `register`).
    from . import _registry  # noqa: F401
