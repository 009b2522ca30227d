"""`Workbench()`: the composite app, tabs Model · Data · Method · Train · Analyze · Compare · Chat.

    from widgets import Workbench
    app = Workbench(model="smollm2-135m-instruct", dataset="instructions", method="sft",
                    peft="lora", max_steps=30)
    app.show()

`show()` chooses: with a notebook front end it displays the live app (press Start);
headless (papermill, nbconvert, CI) it trains right away and leaves static curves,
samples and a summary in the notebook.
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as W

from workbench.config import TrainConfig
from workbench.errors import WorkbenchError

from .analyze import AnalyzePanel
from .chat import ChatPanel
from .compare import ComparePanel
from .config_form import ConfigForm
from .display import is_headless, show_html
from .pickers import DatasetPicker, MethodPicker, ModelPicker, PeftPicker, SelectionPicker
from .train_panel import TrainPanel

# TrainConfig fields that have their own picker instead of a line in the settings form.
PICKED = ("model", "dataset", "method", "peft", "selection", "method_args", "peft_args")
TABS = ("Model", "Data", "Method", "Train", "Analyze", "Compare", "Chat")


class Workbench:
    def __init__(self, model: str = "smollm2-135m-instruct", dataset: str = "instructions",
                 method: str = "sft", peft: str = "lora", *, runs_root: str | None = None,
                 headless: bool | None = None, **config: Any):
        base = TrainConfig.from_dict({"model": model, "dataset": dataset, "method": method,
                                      "peft": peft, **config}, where="Workbench()")
        self.headless = is_headless() if headless is None else headless
        self.model = ModelPicker(base.model)
        self.dataset = DatasetPicker(base.dataset)
        self.selection = SelectionPicker(base.selection)
        self.method = MethodPicker(base.method, base.method_args)
        self.peft = PeftPicker(base.peft, base.peft_args)
        self.settings = ConfigForm(TrainConfig, {k: v for k, v in base.to_dict().items() if k not in PICKED},
                                   skip=PICKED, title="training settings")
        self.panel = TrainPanel(self.config, live=not self.headless)
        self.analyze = AnalyzePanel(lambda: self.panel.result, self.config, live=not self.headless)
        self.compare = ComparePanel(runs_root, live=not self.headless)
        self.compare.follow(self.panel)  # refresh the run list and select the newest when a run starts/ends
        self.chat = ChatPanel([(base.model, "plain")], base=base.model, runs_root=runs_root,
                              get_run_dir=self._last_run_dir, live=not self.headless)
        self.tabs = W.Tab(children=[
            self.model.widget,
            W.VBox([self.dataset.widget, W.HTML("<b>Data selection</b>"), self.selection.widget]),
            W.VBox([self.method.widget, W.HTML("<b>PEFT</b>"), self.peft.widget]),
            W.VBox([self.panel.widget, W.Accordion([self.settings.widget], titles=("settings",))]),
            self.analyze.widget,
            self.compare.widget,
            self.chat.widget,
        ], titles=TABS, selected_index=3)
        self.widget = W.VBox([W.HTML("<h3>LM Workbench</h3>"), self.tabs])
        self.widget.add_class("wb-app")

    def _last_run_dir(self) -> str | None:
        result = self.panel.result
        return str(result.run_dir) if result is not None else None

    def config(self) -> TrainConfig:
        """The TrainConfig the pickers and forms describe right now."""
        values = self.settings.values(changed_only=False)
        values.update(model=self.model.value, dataset=self.dataset.value, method=self.method.value,
                      peft=self.peft.value, selection=self.selection.value(),
                      method_args=self.method.args(), peft_args=self.peft.args())
        return TrainConfig.from_dict(values, where="Workbench")

    def show(self):
        """Live: display the app. Headless: train now and show static results."""
        if self.headless:
            show_html(self.config_html())
            self.run()
            return None
        from IPython.display import display

        display(self.widget)
        return None

    def run(self):
        """Train with the current settings in this thread and return the RunResult."""
        return self.panel.run_sync(show=self.headless)

    @property
    def result(self):
        """The last finished run (RunResult); a clear error if there is none yet."""
        if self.panel.result is None:
            raise WorkbenchError("no finished run yet: press Start in the Train tab and wait "
                                 "for it to finish (or call app.run()), then run this cell")
        return self.panel.result

    def config_html(self) -> str:
        cfg = self.config().to_dict()
        defaults = TrainConfig().to_dict()
        rows = "".join(f"<tr><td>{k}</td><td>{html.escape(str(v))}</td></tr>" for k, v in cfg.items()
                       if k in PICKED[:4] or v != defaults[k])
        return f"<table class='wb-config'><tr><th>setting</th><th>value</th></tr>{rows}</table>"
