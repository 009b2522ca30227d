"""A form generated from a config dataclass: one input per field, its help text beside
it, `choices` metadata as a dropdown. Used for TrainConfig, every method's config and
PEFT's own config classes, so no form is written by hand."""
from __future__ import annotations

import dataclasses
import html
import typing
from typing import Any

import ipywidgets as W
import yaml

from workbench.config import coerce, field_help, load_yaml
from workbench.errors import WorkbenchError

SIMPLE = (bool, int, float, str)


def _hints(cls) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # third-party classes with unresolvable annotations
        return {}


def _base_type(tp):
    """int for int / Optional[int]; None for anything not a simple scalar."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        tp = args[0]
    return tp if tp in SIMPLE else None


class ConfigForm:
    """Inputs for the fields of `cls`. `values()` returns only what differs from the
    defaults (so method_args / peft_args stay short and readable)."""

    def __init__(self, cls, values: dict[str, Any] | None = None, skip: tuple[str, ...] = (),
                 only_simple: bool = False, title: str = ""):
        self.cls = cls
        self.hints = _hints(cls)
        self.defaults: dict[str, Any] = {}
        self.inputs: dict[str, W.Widget] = {}
        self.kinds: dict[str, Any] = {}
        meta = {f.name: f.metadata for f in dataclasses.fields(cls)}
        rows = [W.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        for name, default, help_text in field_help(cls):
            if name in skip:
                continue
            tp = _base_type(self.hints.get(name))
            if only_simple and tp is None and not _yaml_friendly(default):
                continue
            widget = self._input(name, default, tp, meta[name].get("choices"))
            widget.add_class(f"wb-field-{name}")
            self.inputs[name], self.kinds[name], self.defaults[name] = widget, tp, default
            rows.append(W.HBox([widget, W.HTML(f"<small>{html.escape(str(help_text))}</small>",
                                               layout=W.Layout(margin="0 0 0 8px"))]))
        self.widget = W.VBox(rows)
        if values:
            self.set_values(values)

    @staticmethod
    def _input(name, default, tp, choices):
        style, layout = {"description_width": "150px"}, W.Layout(width="360px")
        if choices:
            return W.Dropdown(options=list(choices), value=default if default in choices else choices[0],
                              description=name, style=style, layout=layout)
        if tp is bool:
            return W.Checkbox(value=bool(default), description=name, style=style, layout=layout, indent=True)
        if tp is int and default is not None:
            return W.IntText(value=default, description=name, style=style, layout=layout)
        if tp is float and default is not None:
            return W.FloatText(value=default, description=name, style=style, layout=layout)
        if tp is str and default is not None:
            return W.Text(value=default, description=name, style=style, layout=layout)
        # None defaults, lists, dicts: edit as YAML (empty = None)
        text = "" if default is None else yaml.safe_dump(default, default_flow_style=True).strip()
        return W.Text(value=text, description=name, placeholder="YAML (empty = none)", style=style, layout=layout)

    def _read(self, name):
        w, tp = self.inputs[name], self.kinds[name]
        if isinstance(w, W.Text) and not (tp is str and self.defaults[name] is not None):
            raw = w.value.strip()
            try:
                value = load_yaml(raw) if raw else None
            except yaml.YAMLError:
                raise WorkbenchError(f"{self.cls.__name__}.{name}: {raw!r} is not valid YAML") from None
            if tp is not None and value is not None:
                value = coerce(value, tp, f"{self.cls.__name__}.{name}")
            return value
        return w.value

    def values(self, changed_only: bool = True) -> dict[str, Any]:
        out = {}
        for name in self.inputs:
            v = self._read(name)
            if not changed_only or v != self.defaults[name]:
                out[name] = v
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for name, v in values.items():
            if name not in self.inputs:
                from workbench.errors import UnknownNameError

                raise UnknownNameError(f"{self.cls.__name__} field", name, self.inputs)
            w = self.inputs[name]
            if isinstance(w, W.Text) and not (self.kinds[name] is str and self.defaults[name] is not None):
                w.value = "" if v is None else yaml.safe_dump(v, default_flow_style=True).strip()
            else:
                w.value = v


def _yaml_friendly(default) -> bool:
    if default is None or isinstance(default, SIMPLE):
        return True
    if isinstance(default, (list, tuple, set)):
        return all(isinstance(x, SIMPLE) for x in default)
    return False
