"""What a merge method is: a config dataclass of its knobs (checked in `__post_init__`,
like every method config), a doc card, and how it combines tensors.

A method combines either the source models' weights themselves (`on_deltas=False`: the
soups) or their task vectors τ_i = W_i − W_base (`on_deltas=True`). `combine(knobs,
tensors, weights)` does it for one parameter of full-weight runs, with PEFT's own merge
utilities (`peft.utils.merge_utils`); `lora_combination(knobs)` names the
`add_weighted_adapter` combination type PEFT uses for LoRA runs over one base. Methods
that neither library has (greedy soup) are built on those primitives."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import UnknownNameError, WorkbenchError
from ..methods.base import MethodArgs, positive, same_definition


@dataclass
class MergeArgs(MethodArgs):
    """Base of the merge config dataclasses: `choices` of str knobs are checked, and a
    `density` knob (where a method has one) must lie in (0, 1]."""

    def __post_init__(self):
        super().__post_init__()
        if hasattr(self, "density"):
            check_density(self.density)


def check_density(density: Any, prefix: str = "merge") -> None:
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise WorkbenchError(f"{prefix}.density must be in (0, 1] (the fraction of each task vector kept), "
                             f"got {density!r}")


def check_positive(knobs: Any, *names: str) -> None:
    positive(knobs, *names, prefix="merge")


@dataclass(frozen=True)
class MergeSpec:
    name: str
    config_cls: type                                   # dataclass of the method's knobs (metadata["help"])
    summary: str                                       # one line for listings
    combine: Callable[[Any, list, Any], Any] | None    # (knobs, tensors, weights tensor) -> tensor; None: LoRA only
    lora_combination: Callable[[Any], str] | None      # knobs -> add_weighted_adapter combination_type
    on_deltas: bool = True                             # combine task vectors (True) or the weights themselves
    default_weight: str = "one"                        # "one" (1 each) or "uniform" (1/n each)

    @property
    def card(self) -> str:
        """This method's card from docs/merging.md, or the summary."""
        from .cards import card
        return card(self.name) or self.summary

    @property
    def knobs(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.config_cls)]

    def default_weights(self, n: int) -> list[float]:
        return [1.0 / n] * n if self.default_weight == "uniform" else [1.0] * n


_MERGES: dict[str, MergeSpec] = {}


def register(spec: MergeSpec) -> MergeSpec:
    """Add a merge method. A name already taken by a different definition is refused."""
    known = _MERGES.get(spec.name)
    if known is not None and known is not spec and not same_definition(known, spec, "config_cls"):
        raise WorkbenchError(f"merge method {spec.name!r} is already registered "
                             f"(by {known.config_cls.__module__}); choose another name")
    _MERGES[spec.name] = spec
    return spec


def get_merge_method(name: str) -> MergeSpec:
    _load_all()
    if name not in _MERGES:
        raise UnknownNameError("merge method", str(name), _MERGES)
    return _MERGES[name]


def list_merge_methods() -> list[MergeSpec]:
    _load_all()
    return list(_MERGES.values())


def _load_all() -> None:
    from . import methods  # noqa: F401  (each definition there calls `register`)


def check_new_folder(out: Path) -> None:
    """`--out` of a merge or an export: a folder that does not exist yet or is empty, outside
    any run's own files, that we may create. Checks only: nothing is created here."""
    from ..outputs import check_parent
    from ..runs.store import refuse_run_owned

    refuse_run_owned(out, "--out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WorkbenchError(f"--out {out} already exists and is not an empty folder; pick another")
    check_parent(out, "--out")


def staging_dir(out: Path) -> Path:
    """A temporary folder beside `out`, renamed into place once the result is complete. A
    place that passes the permission check but takes no folder (under /proc) is one line."""
    import tempfile

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise WorkbenchError(f"--out {out}: cannot create a folder in {out.parent} ({e.strerror or e})") from None
