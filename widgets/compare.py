"""Compare tab: pick runs from the store, overlay their curves, a table of final metrics and
one of the settings that differ; merge the selected runs (any `workbench.merging` method,
its knobs from the method's own config dataclass), export a run, and analyse the selected run
(the Analyze panel, pointed at it) — so a merged run is probed like any trained one.

The run list follows a TrainPanel in the same app (`follow(train_panel)`): it refreshes when
a run starts and when it finishes, and preselects the newest run."""
from __future__ import annotations

import html
import threading
import time
from pathlib import Path

import ipywidgets as W
import plotly.graph_objects as go

from workbench.errors import WorkbenchError
from workbench.reports import LOSS_KEYS, PREFERENCE_KEYS, final_values, harness_keys, metrics_grid, present_keys

from .config_form import ConfigForm
from .display import show_figure, show_html

AUTO = W.Layout(width="auto")
# Config keys that always differ between runs and say nothing about how they were made.
_NOISE = ("run_dir", "resolved", "resumes", "merge.sources")


def comparison(runs) -> tuple[go.Figure | None, str]:
    """(overlaid curves, HTML table of final metrics) for a list of RunInfo."""
    import pandas as pd

    curves = {r.name: r.records() for r in runs}
    harness = tuple(harness_keys([x for recs in curves.values() for x in recs]))  # workbench eval / eval_tasks
    rows = [{"run": r.name, "status": r.status, "method": r.config.get("method"),
             "peft": r.config.get("peft"), "model": r.config.get("model"), "steps": r.summary.get("steps"),
             **final_values(curves[r.name], r.summary, keys=LOSS_KEYS + PREFERENCE_KEYS + harness)} for r in runs]
    table = pd.DataFrame(rows).fillna("").to_html(index=False, classes="wb-compare-table") if rows else \
        "<p><i>no runs selected</i></p>"
    keys = present_keys([x for recs in curves.values() for x in recs], LOSS_KEYS + PREFERENCE_KEYS)
    fig = metrics_grid([], keys, runs=curves, title="curves by run") if keys else None
    return fig, table


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(runs) -> dict[str, dict[str, object]]:
    """{config key: {run name: value}} for the keys (nested ones as `a.b`) whose values are
    not the same in every run; a key a run lacks counts as a difference."""
    flat = {r.name: _flatten(r.config) for r in runs}
    keys = sorted({k for f in flat.values() for k in f})
    missing = object()
    out = {}
    for k in keys:
        if any(k == n or k.startswith(n + ".") for n in _NOISE):
            continue
        values = [flat[r.name].get(k, missing) for r in runs]
        if any(v != values[0] for v in values[1:]):
            out[k] = {r.name: ("—" if v is missing else v) for r, v in zip(runs, values)}
    return out


def differences_html(runs) -> str:
    if len(runs) < 2:
        return "<p><i>select two or more runs to see which settings differ</i></p>"
    diff = config_differences(runs)
    if not diff:
        return "<p>the selected runs have the same configuration</p>"
    head = "".join(f"<th>{html.escape(r.name)}</th>" for r in runs)
    rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td>"
                   + "".join(f"<td>{html.escape(str(vals[r.name]))}</td>" for r in runs) + "</tr>"
                   for k, vals in diff.items())
    return (f"<b>what differs</b><table class='wb-compare-diff'><tr><th>setting</th>{head}</tr>{rows}</table>")


class _Selected:
    """What the Analyze panel needs of a run: a RunResult and a config naming its base and data."""

    def __init__(self, info):
        from workbench.runs.run import RunResult

        self.info = info
        self.result = RunResult(info.path, info.status, info.summary, info.records())

    def config(self):
        from workbench.config import TrainConfig

        c = self.info.config
        return TrainConfig(model=c.get("model") or "tiny-llama", dataset=c.get("dataset") or "instructions")


class ComparePanel:
    def __init__(self, root=None, live: bool = True):
        self.root = root
        self.live = live
        self.picker = W.SelectMultiple(description="runs", rows=8, layout=W.Layout(width="640px"))
        self.picker.add_class("wb-compare-runs")
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.compare_button = W.Button(description="Compare", icon="line-chart", button_style="primary")
        self.compare_button.add_class("wb-compare")
        self.table = W.HTML()
        self.diff = W.HTML()
        self.diff.add_class("wb-compare-diff-view")
        self.plot_box = W.Box()
        self.plot_box.add_class("wb-compare-plot")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.compare_button.on_click(lambda _: self.compare())
        self.picker.observe(lambda _: self._selection_changed(), names="value")
        self._by_path: dict = {}
        self.merged = None       # the last MergeResult
        self.exported = None     # the last ExportResult
        self._build_merge()
        self._build_export()
        self._build_analyze()
        self.widget = W.VBox([
            W.HBox([self.picker, W.VBox([self.refresh_button, self.compare_button])]),
            self.diff, self.table, self.plot_box,
            W.Accordion([self.merge_box, self.export_box, self.analyze_box],
                        titles=("Merge the selected runs", "Export the selected run", "Analyze the selected run")),
        ])
        self.refresh()

    # ---- the run list -------------------------------------------------------------------
    def runs(self):
        from workbench.runs import list_runs

        return list_runs(self.root)

    def refresh(self, select: str | None = None, latest: bool = False) -> None:
        """Re-read the run store. `select`: a run directory to select; `latest`: select the
        newest run; otherwise keep the selection (or select the newest when there is none)."""
        runs = self.runs()
        self._by_path = {str(r.path): r for r in runs}
        keep = [p for p in self.picker.value if p in self._by_path]
        self.picker.options = [(f"{r.name} · {r.config.get('method')} · {r.config.get('peft')} · {r.status}",
                                str(r.path)) for r in runs]
        if select is not None and str(select) in self._by_path:
            keep = [str(select)]
        elif (latest or not keep) and runs:
            keep = [str(runs[-1].path)]
        self.picker.value = tuple(keep)
        self._selection_changed()

    def follow(self, train_panel) -> None:
        """Refresh when `train_panel` starts or finishes a run, selecting that run."""
        from workbench.runs.records import Event

        on_record, train = train_panel.on_record, train_panel._train

        def record(rec):
            on_record(rec)
            if rec.event in (Event.START, Event.END):
                self._safe(lambda: self.refresh(latest=True))

        def run(cfg, resume=False):
            try:
                train(cfg, resume)
            finally:
                result = train_panel.result
                self._safe(lambda: self.refresh(select=str(result.run_dir) if result else None, latest=True))
        train_panel.on_record, train_panel._train = record, run

    @staticmethod
    def _safe(fn) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 — a display problem must never stop training
            import traceback
            traceback.print_exc()

    def selected(self):
        return [self._by_path[p] for p in self.picker.value if p in self._by_path]

    def _selection_changed(self) -> None:
        chosen = self.selected()
        self.diff.value = differences_html(chosen)
        n = len(chosen)
        self.merge_button.disabled = n < 2
        self.export_button.disabled = self.analyze_button.disabled = n != 1
        self.merge_status.value = "" if n >= 2 else "<i>select two or more finished runs to merge</i>"

    def compare(self, paths=None):
        chosen = [self._by_path[p] for p in (paths or self.picker.value) if p in self._by_path]
        fig, table = comparison(chosen)
        self.table.value = table
        self.diff.value = differences_html(chosen)
        self.plot_box.children = [go.FigureWidget(fig)] if (fig is not None and self.live) else []
        return fig, table

    def show_static(self, runs=None) -> None:
        runs = runs if runs is not None else self.runs()
        fig, table = comparison(runs)
        show_html(table)
        show_html(differences_html(runs))
        if fig is not None:
            show_figure(fig)

    # ---- merge ------------------------------------------------------------------------------
    def _build_merge(self) -> None:
        from workbench.merging import list_merge_methods

        specs = list_merge_methods()
        self.merge_method = W.Dropdown(options=[(f"{s.name} — {s.summary}", s.name) for s in specs],
                                       value="linear", description="method", layout=W.Layout(width="640px"))
        self.merge_method.add_class("wb-merge-method")
        self.merge_weights = W.Text(description="weights", placeholder="w1,w2,… (empty: the method's default)",
                                    layout=W.Layout(width="420px"))
        self.merge_out = W.Text(description="out", placeholder="empty: runs/merge-<method>-<time>",
                                layout=W.Layout(width="420px"))
        self.merge_button = W.Button(description="Merge", icon="compress", button_style="primary", layout=AUTO)
        self.merge_button.add_class("wb-merge")
        self.merge_status = W.HTML()
        self.merge_status.add_class("wb-merge-status")
        self.merge_form_box = W.VBox()
        self.merge_method.observe(lambda _: self._method_form(), names="value")
        self.merge_button.on_click(lambda _: self.start_merge())
        self._method_form()
        self.merge_box = W.VBox([self.merge_method, self.merge_form_box, self.merge_weights, self.merge_out,
                                 W.HBox([self.merge_button, self.merge_status])])

    def _method_form(self) -> None:
        from workbench.merging import get_merge_method

        spec = get_merge_method(self.merge_method.value)
        self.merge_form = ConfigForm(spec.config_cls, title=f"{spec.name} knobs")
        self.merge_form_box.children = [self.merge_form.widget] if self.merge_form.inputs else []

    def merge_request(self) -> dict:
        """The keyword arguments of workbench.merge the form describes (without the runs)."""
        return {"method": self.merge_method.value, "weights": self.merge_weights.value.strip() or None,
                "out": self.merge_out.value.strip() or None, **self.merge_form.values()}

    def start_merge(self):
        """Merge the selected runs: in a background thread when live, here when headless."""
        paths = list(self.picker.value)
        try:
            request = self.merge_request()
        except WorkbenchError as e:
            self.merge_status.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
            return None
        self.merge_button.disabled = True
        self.merge_status.value = f"merging {len(paths)} runs with {html.escape(request['method'])}…"
        if not self.live:
            return self.run_merge(paths, request)
        threading.Thread(target=self.run_merge, args=(paths, request), daemon=True).start()
        return None

    def run_merge(self, paths, request):
        from workbench.merging import merge

        request = dict(request)
        method = request.pop("method")
        if request.get("out") is None:
            from workbench.runs import runs_root

            root = Path(self.root) if self.root else runs_root()
            request["out"] = root / f"merge-{method}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            self.merged = merge(paths, method, **request)
            m = self.merged.config["merge"]
            self.merge_status.value = (f"merged with {html.escape(method)} (weights "
                                       f"{', '.join(f'{w:g}' for w in m['weights'])}) → "
                                       f"<code>{html.escape(str(self.merged.run_dir))}</code>")
            self.refresh(select=str(self.merged.run_dir))
        except Exception as e:  # noqa: BLE001 — shown in the panel
            self.merged = None
            self.merge_status.value = f"<span style='color:#b00'>{html.escape(f'{type(e).__name__}: {e}')}</span>"
        finally:
            self.merge_button.disabled = len(self.selected()) < 2
        return self.merged

    # ---- export -----------------------------------------------------------------------------
    def _build_export(self) -> None:
        self.export_format = W.Dropdown(options=["safetensors", "gguf"], value="safetensors", description="format")
        self.export_dtype = W.Dropdown(options=["f32", "f16"], value="f32", description="GGUF dtype")
        self.export_out = W.Text(description="out", placeholder="empty: <run>-export-<format> beside the run",
                                 layout=W.Layout(width="420px"))
        self.export_button = W.Button(description="Export", icon="download", layout=AUTO)
        self.export_button.add_class("wb-export")
        self.export_status = W.HTML()
        self.export_status.add_class("wb-export-status")
        self.export_button.on_click(lambda _: self.start_export())
        self.export_dtype.disabled = True  # a GGUF tensor type: safetensors keeps the run's weights
        self.export_format.observe(lambda ch: setattr(self.export_dtype, "disabled", ch["new"] != "gguf"), "value")
        self.export_box = W.VBox([W.HBox([self.export_format, self.export_dtype]), self.export_out,
                                  W.HBox([self.export_button, self.export_status])])

    def start_export(self):
        chosen = self.selected()
        if len(chosen) != 1:
            self.export_status.value = "<i>select one run to export</i>"
            return None
        run = chosen[0].path
        fmt = self.export_format.value
        out = self.export_out.value.strip() or str(run.parent / f"{run.name}-export-{fmt}")
        self.export_button.disabled = True
        self.export_status.value = f"exporting {html.escape(run.name)} as {fmt} and reading it back…"
        dtype = self.export_dtype.value if fmt == "gguf" else "f32"
        if not self.live:
            return self.run_export(run, out, fmt, dtype)
        threading.Thread(target=self.run_export, args=(run, out, fmt, dtype), daemon=True).start()
        return None

    def run_export(self, run, out, fmt: str, dtype: str = "f32"):
        from workbench.merging.export import export_run

        try:
            self.exported = export_run(run, out, fmt, dtype=dtype)
            self.export_status.value = (f"wrote <code>{html.escape(str(self.exported.file))}</code> (read back: max "
                                        f"|Δlogit| {self.exported.max_abs_diff:.1e})")
        except Exception as e:  # noqa: BLE001 — shown in the panel
            self.exported = None
            self.export_status.value = f"<span style='color:#b00'>{html.escape(f'{type(e).__name__}: {e}')}</span>"
        finally:
            self.export_button.disabled = len(self.selected()) != 1
        return self.exported

    # ---- analyze ------------------------------------------------------------------------------
    def _build_analyze(self) -> None:
        from .analyze import AnalyzePanel

        self._target: _Selected | None = None
        self.analyze_button = W.Button(description="Analyze the selected run", icon="search", layout=AUTO)
        self.analyze_button.add_class("wb-compare-analyze")
        self.analyze_button.on_click(lambda _: self.analyze_selected())
        self.analyze = AnalyzePanel(lambda: self._target.result if self._target else None,
                                    lambda: self._target.config() if self._target else None, live=self.live)
        self.analyze_box = W.VBox([self.analyze_button, self.analyze.widget])

    def analyze_selected(self):
        """Point the embedded Analyze panel at the selected run and summarise it."""
        chosen = self.selected()
        if len(chosen) != 1:
            return None
        self._target = _Selected(chosen[0])
        self.analyze.update()
        return self._target
