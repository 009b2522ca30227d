"""Pickers for model, dataset, method, PEFT type and selection strategy. Each has a
`.widget` and reads back the value(s) that go into TrainConfig."""
from __future__ import annotations

import html

import ipywidgets as W
import mistune

from workbench.errors import WorkbenchError

from .config_form import ConfigForm

# PEFT config fields that describe bookkeeping, not a knob a user turns.
PEFT_BOOKKEEPING = ("task_type", "peft_type", "auto_mapping", "peft_version",
                    "base_model_name_or_path", "revision", "inference_mode")


def _error_html(e: Exception) -> str:
    return f"<span class='wb-error' style='color:#b00'>{html.escape(str(e))}</span>"


class ModelPicker:
    """Built-in models plus free text (a hub id, a local directory or a .gguf file)."""

    def __init__(self, value: str):
        from workbench.models import list_models

        self.models = {m.name: m for m in list_models()}
        self.input = W.Combobox(value=value, options=list(self.models), description="model",
                                placeholder="built-in name, org/name, a local directory or .gguf file",
                                ensure_option=False, layout=W.Layout(width="460px"))
        self.input.add_class("wb-model")
        self.info = W.HTML()
        self.input.observe(lambda _: self._describe(), "value")
        self._describe()
        rows = "".join(f"<tr><td>{m.name}</td><td>{m.kind}</td><td>{m.params}</td>"
                       f"<td>{'yes' if m.cached else 'no'}</td><td>{html.escape(m.source)}</td></tr>"
                       for m in self.models.values())
        table = W.HTML("<table><tr><th>name</th><th>kind</th><th>params</th><th>cached</th>"
                       f"<th>source</th></tr>{rows}</table>")
        self.widget = W.VBox([self.input, self.info, table])

    @property
    def value(self) -> str:
        return self.input.value.strip()

    def _describe(self) -> None:
        m = self.models.get(self.value)
        self.info.value = (f"{m.kind} model, {m.params} parameters, "
                           f"{'cached' if m.cached else 'not cached yet (converted on first use)'}"
                           if m else "hub id, local directory or .gguf file: loaded with transformers")


class DatasetPicker:
    """Built-in dataset, a local file or a hub id, with a preview and detected format."""

    def __init__(self, value: str):
        from workbench.data import list_datasets

        names = [getattr(d, "name", d) for d in list_datasets()]
        self.input = W.Combobox(value=value, options=names, description="dataset", ensure_option=False,
                                placeholder="built-in name, .jsonl/.csv/.parquet file or hub id",
                                layout=W.Layout(width="460px"))
        self.input.add_class("wb-dataset")
        self.button = W.Button(description="Preview", icon="table")
        self.button.add_class("wb-preview")
        self.table = W.HTML()
        self.button.on_click(lambda _: self.preview())
        self.widget = W.VBox([W.HBox([self.input, self.button]), self.table])

    @property
    def value(self) -> str:
        return self.input.value.strip()

    def preview(self, n: int = 5) -> str:
        from workbench.data import preview

        try:
            frame, fmt = preview(self.value, n)
            self.table.value = (f"<p>detected format: <b>{html.escape(str(fmt))}</b></p>"
                                + frame.to_html(index=False, max_colwidth=120))
        except (WorkbenchError, OSError) as e:
            self.table.value = _error_html(e)
        return self.table.value


class MethodPicker:
    """Method dropdown, its config form (from its dataclass) and its doc card."""

    def __init__(self, value: str, method_args: dict | None = None):
        from workbench.methods import get_method, list_methods

        self._get = get_method
        self.specs = {m.name: m for m in list_methods()}
        self.input = W.Dropdown(options=[(f"{m.name} — {m.summary}", m.name) for m in self.specs.values()],
                                value=get_method(value).name, description="method",
                                layout=W.Layout(width="560px"))
        self.input.add_class("wb-method")
        self.form_box, self.card = W.VBox(), W.HTML(layout=W.Layout(max_width="520px"))
        self.form: ConfigForm | None = None
        self.input.observe(lambda _: self._build(), "value")
        self._build(method_args)
        self.widget = W.VBox([self.input, W.HBox([self.form_box, self.card])])

    def _build(self, values: dict | None = None) -> None:
        spec = self.specs[self.input.value]
        self.form = ConfigForm(spec.config_cls, values, title=f"{spec.name} settings")
        self.form_box.children = [self.form.widget]
        self.card.value = mistune.html(spec.card)

    @property
    def value(self) -> str:
        return self.input.value

    def args(self) -> dict:
        return self.form.values() if self.form else {}


class PeftPicker:
    """PEFT type and a form from PEFT's own config class (collapsed: it has many knobs)."""

    def __init__(self, value: str, peft_args: dict | None = None):
        from workbench.peft_menu import get_peft, list_peft

        self._get = get_peft
        self.types = {p.name: p for p in list_peft()}
        self.input = W.Dropdown(options=[(f"{p.name} — {p.summary}", p.name) for p in self.types.values()],
                                value=get_peft(value).name, description="PEFT", layout=W.Layout(width="560px"))
        self.input.add_class("wb-peft")
        self.box = W.Accordion()
        self.form: ConfigForm | None = None
        self.input.observe(lambda _: self._build(), "value")
        self._build(peft_args)
        self.widget = W.VBox([self.input, self.box])

    def _build(self, values: dict | None = None) -> None:
        p = self.types[self.input.value]
        cls = p.config_cls or p.knobs_cls  # PEFT's config, or our own knobs (top-k-layers)
        if cls is None:
            self.form, self.box.children = None, []
            return
        self.form = ConfigForm(cls, {**p.defaults, **(values or {})}, skip=PEFT_BOOKKEEPING,
                               only_simple=True)
        self.box.children = [self.form.widget]
        self.box.set_title(0, f"{cls.__name__} settings")

    @property
    def value(self) -> str:
        return self.input.value

    def args(self) -> dict:
        return self.form.values() if self.form else {}


class SelectionPicker:
    """Optional data selection before training: strategy, fraction and its knobs."""

    def __init__(self, selection: dict | None = None):
        from workbench.selection import list_strategies

        selection = dict(selection or {})
        self.specs = {s.name: s for s in list_strategies()}
        self.input = W.Dropdown(options=[("none (train on all rows)", "")] +
                                [(f"{s.name} — {s.summary}", s.name) for s in self.specs.values()],
                                value=selection.pop("strategy", ""), description="selection",
                                layout=W.Layout(width="560px"))
        self.input.add_class("wb-selection")
        self.fraction = W.BoundedFloatText(value=selection.pop("fraction", 0.5), min=0.01, max=1.0,
                                           step=0.05, description="fraction")
        self.form_box = W.VBox()
        self.form: ConfigForm | None = None
        self.input.observe(lambda _: self._build(), "value")
        self._build(selection)
        self.widget = W.VBox([self.input, self.fraction, self.form_box])

    def _build(self, values: dict | None = None) -> None:
        spec = self.specs.get(self.input.value)
        self.form = ConfigForm(spec.knobs, values) if spec else None
        self.form_box.children = [self.form.widget] if self.form else []
        self.fraction.layout.display = "flex" if spec else "none"

    def value(self) -> dict:
        if not self.input.value:
            return {}
        return {"strategy": self.input.value, "fraction": self.fraction.value,
                **(self.form.values() if self.form else {})}
