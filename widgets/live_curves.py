"""Live curves: loss and eval loss, plus a preference panel (rewards, margins, reward vs
observed vs idealised ranking accuracy, alignment gap, KL ± SE, sample length) that
appears once a preference metric arrives. Records come from the training thread; the
figure is redrawn at most every `min_interval` seconds so a fast model does not flood the
front end."""
from __future__ import annotations

import threading
import time

import ipywidgets as W
import plotly.graph_objects as go

from workbench.reports import (
    ERROR_KEYS,
    errors,
    harness_figure,
    harness_keys,
    loss_figure,
    preference_figure,
    preference_trace_keys,
    series,
)
from workbench.runs.records import Kind, MetricsRecord

from .display import show_figure

LOSS_TRACES = ("loss", "eval_loss")


class LiveCurves:
    def __init__(self, live: bool = True, min_interval: float = 0.3):
        self.live = live
        self.records: list[MetricsRecord] = []
        self.min_interval = min_interval
        self._last_draw = float("-inf")
        self._lock = threading.Lock()
        self.has_preference = False
        if live:
            self.loss_fig = go.FigureWidget(loss_figure([]))
            self.pref_fig = go.FigureWidget(preference_figure([]))
            self.loss_box = W.Box([self.loss_fig])
            self.loss_box.add_class("wb-loss-plot")
            self.pref_box = W.Box([self.pref_fig], layout=W.Layout(display="none"))
            self.pref_box.add_class("wb-preference-plot")
            self.harness_fig = go.FigureWidget(harness_figure([]))
            self.harness_box = W.Box([self.harness_fig], layout=W.Layout(display="none"))
            self.harness_box.add_class("wb-harness-plot")
            self._harness_keys: list[str] = []
            self.widget = W.VBox([self.loss_box, self.pref_box, self.harness_box])

    def reset(self) -> None:
        with self._lock:
            self.records = []
        self.redraw()

    def add(self, rec: MetricsRecord) -> None:
        if rec.kind not in (Kind.TRAIN, Kind.EVAL):
            return
        with self._lock:
            self.records.append(rec)
            if not self.has_preference and any(k in rec.values for k in preference_trace_keys()):
                self.has_preference = True
        if self.live and (rec.kind is Kind.EVAL or time.monotonic() - self._last_draw >= self.min_interval):
            self.redraw()

    def redraw(self) -> None:
        if not self.live:
            return
        with self._lock:
            recs = list(self.records)
            self._last_draw = time.monotonic()
        with self.loss_fig.batch_update():
            for trace, key in zip(self.loss_fig.data, LOSS_TRACES):
                trace.x, trace.y = series(recs, key)
        if self.has_preference:
            self.pref_box.layout.display = "flex"
            with self.pref_fig.batch_update():
                for trace, key in zip(self.pref_fig.data, preference_trace_keys()):
                    trace.x, trace.y = series(recs, key)
                    if key in ERROR_KEYS:
                        trace.error_y = dict(type="data", array=errors(recs, key, ERROR_KEYS[key]), visible=True)
        keys = harness_keys(recs)
        if keys:  # eval_tasks: one trace per task metric, rebuilt when a new one appears
            self.harness_box.layout.display = "flex"
            with self.harness_fig.batch_update():
                if keys != self._harness_keys:
                    self.harness_fig.data = ()
                    for trace in harness_figure(recs).data:
                        self.harness_fig.add_trace(trace)
                    self._harness_keys = keys
                else:
                    for trace, key in zip(self.harness_fig.data, keys):
                        trace.x, trace.y = series(recs, key)
                        trace.error_y = dict(type="data", array=errors(recs, key, key + "_stderr"), visible=True)

    def n_points(self) -> int:
        return len(series(self.records, "loss")[0])

    def figures(self) -> list[go.Figure]:
        """Static copies of what the live plot shows (for headless output and reports)."""
        figs = [loss_figure(self.records)]
        if self.has_preference:
            figs.append(preference_figure(self.records))
        if harness_keys(self.records):
            figs.append(harness_figure(self.records))
        return figs

    def show_static(self) -> None:
        for fig in self.figures():
            show_figure(fig)
