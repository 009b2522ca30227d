"""Which parameters a notebook runs with under `workbench check`.

A notebook carries its own profiles in its metadata, next to the parameters cell they
fill in (the convention every notebook in notebooks/ follows)::

    "metadata": {"workbench": {"profiles": {"ci": {"model": "tiny-llama", "max_steps": 2}}}}

Each profile maps parameter names (declared in the cell tagged `parameters`) to values.
`metadata.workbench.test_parameters`, the older spelling, still counts as the `ci` profile.
A `--params` YAML file overrides them: top-level keys apply to every notebook that
declares them, and a key naming a notebook (`00_quickstart.ipynb: {eval_steps: 2}`) holds
values for that notebook alone.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UnknownNameError, WorkbenchError
from ..notebooks import check_declared

DEFAULT_PROFILE = "ci"
OWN_DEFAULTS = "defaults"   # --profile defaults: every notebook with its parameters cell as written
LEGACY_KEY = "test_parameters"


def notebook_profiles(nb) -> dict[str, dict[str, Any]]:
    """The profiles in a notebook node's `metadata.workbench` (legacy `test_parameters` as `ci`)."""
    meta = nb.metadata.get("workbench") or {}
    if not isinstance(meta, dict):
        return {}
    profiles = {k: dict(v) for k, v in (meta.get("profiles") or {}).items() if isinstance(v, dict)}
    legacy = meta.get(LEGACY_KEY)
    if isinstance(legacy, dict) and DEFAULT_PROFILE not in profiles:
        profiles[DEFAULT_PROFILE] = dict(legacy)
    return profiles


@dataclass
class ParamsFile:
    """A parsed `--params` file: values for all notebooks, and per notebook file name."""
    path: Path | None = None
    common: dict[str, Any] = field(default_factory=dict)
    per_notebook: dict[str, dict[str, Any]] = field(default_factory=dict)

    def section(self, notebook: Path) -> dict[str, Any]:
        return dict(self.per_notebook.get(notebook.stem) or {})


def load_params_file(path: str | Path | None) -> ParamsFile:
    if path is None:
        return ParamsFile()
    from ..config import read_yaml_mapping

    path = Path(path)
    data = read_yaml_mapping(path, "--params file", "parameter names to values")
    out = ParamsFile(path)
    for key, value in data.items():
        key = str(key)
        if key.endswith(".ipynb"):
            if not isinstance(value, dict):
                raise WorkbenchError(f"{path}: {key} must map parameter names to values, "
                                     f"got {type(value).__name__}")
            out.per_notebook[key.removesuffix(".ipynb")] = {str(k): v for k, v in value.items()}
        else:
            out.common[key] = value
    return out


def resolve_parameters(notebook: Path, declared: dict[str, Any], profile: str | None,
                       overrides: ParamsFile) -> tuple[str | None, dict[str, Any]]:
    """(profile used, parameters) for one notebook, or WorkbenchError naming what is wrong.

    `profile=None` means the default: the `ci` profile where the notebook has one, else the
    notebook's own defaults; `profile="defaults"` means the notebook's own defaults always."""
    import nbformat

    profiles = notebook_profiles(nbformat.read(str(notebook), as_version=4))
    if profile == OWN_DEFAULTS and OWN_DEFAULTS not in profiles:
        used = None
    elif profile is None:
        used = DEFAULT_PROFILE if DEFAULT_PROFILE in profiles else None
    elif profile in profiles:
        used = profile
    elif profiles:
        raise UnknownNameError(f"profile of {notebook.name}", profile, profiles)
    else:
        raise WorkbenchError(f"unknown profile {profile!r}: {notebook.name} declares no profiles "
                             f"(metadata.workbench.profiles)")
    params = dict(profiles.get(used, {}))
    check_declared(notebook, params, declared, f"profile {used!r} in its metadata")
    section = overrides.section(notebook)
    check_declared(notebook, section, declared, f"{overrides.path}")
    params.update({k: v for k, v in overrides.common.items() if k in declared})
    params.update(section)
    return used, params


def check_common_overrides(overrides: ParamsFile, declared_by: dict[Path, dict[str, Any]]) -> None:
    """Every top-level key of the --params file must be declared by at least one notebook, and
    every per-notebook section must name one of them (a warning: the same file may serve runs
    over fewer notebooks)."""
    every = set().union(*declared_by.values()) if declared_by else set()
    for key in overrides.common:
        if key not in every:
            where = f"in {overrides.path}" if overrides.path else "override"
            raise UnknownNameError(f"parameter {where} (no notebook declares it)", key, every)
    names = {p.stem for p in declared_by}
    for key in overrides.per_notebook:
        if key not in names:
            print(f"workbench check: warning: {overrides.path}: no notebook {key}.ipynb among those checked",
                  file=sys.stderr)


