"""Static plotly figures and HTML reports built from metrics records.

The same figures serve the headless widgets (executed notebooks), the run-comparison
panel and the sweep report, so a curve looks the same wherever it is shown. Static
figures only: this module imports no widget code.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .runs.records import Kind, MetricsRecord

LOSS_KEYS = ("loss", "eval_loss")
# Logged by the preference methods: TRL's rewards/* and logps/* on training batches (eval_*
# on the eval set) and the workbench's probes at each eval (workbench.methods.preference_metrics).
# eval_idealised_ranking_accuracy: what the exact optimum of the DPO objective would rank correctly
# (Chen et al., Thm. 3.1); eval_alignment_gap = idealised − observed ranking accuracy.
PREFERENCE_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "eval_rewards/margins",
                   "rewards/accuracies", "eval_ranking_accuracy", "eval_idealised_ranking_accuracy",
                   "eval_alignment_gap", "eval_kl_to_ref", "eval_kl_to_ref_se",
                   "logps/chosen", "logps/rejected")
# A key whose uncertainty is logged beside it (standard error), drawn as error bars.
ERROR_KEYS = {"eval_kl_to_ref": "eval_kl_to_ref_se"}


def series(records: Iterable[MetricsRecord], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric across train/eval records, skipping missing values."""
    xs, ys = [], []
    for r in records:
        if r.kind in (Kind.TRAIN, Kind.EVAL) and isinstance(r.values.get(key), (int, float)) \
                and not isinstance(r.values.get(key), bool):
            xs.append(r.step)
            ys.append(float(r.values[key]))
    return xs, ys


def errors(records: Iterable[MetricsRecord], key: str, err_key: str) -> list[float]:
    """The `err_key` value logged beside each point of `series(records, key)` (0 where none)."""
    out = []
    for r in records:
        if r.kind in (Kind.TRAIN, Kind.EVAL) and isinstance(r.values.get(key), (int, float)) \
                and not isinstance(r.values.get(key), bool):
            e = r.values.get(err_key)
            out.append(float(e) if isinstance(e, (int, float)) and not isinstance(e, bool) else 0.0)
    return out


def present_keys(records: Sequence[MetricsRecord], keys: Sequence[str]) -> list[str]:
    seen = {k for r in records if r.kind in (Kind.TRAIN, Kind.EVAL) for k in r.values}
    return [k for k in keys if k in seen]


def loss_figure(records: Sequence[MetricsRecord], title: str = "loss") -> go.Figure:
    """Training loss (line) and eval loss (markers) against optimizer step."""
    fig = go.Figure()
    for key, mode in (("loss", "lines"), ("eval_loss", "lines+markers")):
        xs, ys = series(records, key)
        fig.add_scatter(x=xs, y=ys, mode=mode, name=key)
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", height=320,
                      margin=dict(l=50, r=20, t=40, b=40), template="plotly_white")
    return fig


HARNESS_PREFIX = "harness/"
HARNESS_SUFFIXES = ("_stderr", "/n", "/limit")


def harness_keys(records: Iterable[MetricsRecord]) -> list[str]:
    """The harness metrics (harness/<task>/<metric>) present in eval records, in first-seen order."""
    keys: dict[str, None] = {}
    for r in records:
        if r.kind is Kind.EVAL:
            for k in r.values:
                if k.startswith(HARNESS_PREFIX) and not k.endswith(HARNESS_SUFFIXES):
                    keys.setdefault(k)
    return list(keys)


def harness_figure(records: Sequence[MetricsRecord]) -> go.Figure:
    """Harness scores (eval_tasks during training) against step, ± 1 stderr."""
    fig = go.Figure()
    for key in harness_keys(records):
        xs, ys = series(records, key)
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=key.removeprefix(HARNESS_PREFIX),
                        error_y=dict(type="data", array=errors(records, key, key + "_stderr"), visible=True))
    fig.update_layout(title="harness scores (eval_tasks)", xaxis_title="step", yaxis_title="score", height=300,
                      margin=dict(l=50, r=20, t=40, b=40), template="plotly_white")
    return fig


# How the preference metrics are grouped into panels (each key one trace).
PREFERENCE_PANELS = {
    "rewards (chosen vs rejected)": ("rewards/chosen", "rewards/rejected"),
    "reward margin": ("rewards/margins", "eval_rewards/margins"),
    "accuracy: reward vs ranking (observed, idealised)": ("rewards/accuracies", "eval_ranking_accuracy",
                                                          "eval_idealised_ranking_accuracy"),
    "alignment gap (idealised − observed ranking)": ("eval_alignment_gap",),
    "KL to reference (nats, ± 1 SE)": ("eval_kl_to_ref",),
    "sample length (tokens)": ("eval_sample_length",),
}
PREFERENCE_COLS = 3


def preference_figure(records: Sequence[MetricsRecord]) -> go.Figure:
    """2x3 panels of the preference metrics; one trace per key, always in the same order
    (the live plot updates traces in place by index). Keys in ERROR_KEYS carry error bars."""
    cols = PREFERENCE_COLS
    rows = -(-len(PREFERENCE_PANELS) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(PREFERENCE_PANELS))
    for i, keys in enumerate(PREFERENCE_PANELS.values()):
        for key in keys:
            xs, ys = series(records, key)
            extra = {}
            if key in ERROR_KEYS:
                extra["error_y"] = dict(type="data", array=errors(records, key, ERROR_KEYS[key]), visible=True)
            fig.add_scatter(x=xs, y=ys, mode="lines+markers" if key.startswith("eval_") else "lines", name=key,
                            row=i // cols + 1, col=i % cols + 1, **extra)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=240 * rows + 80, template="plotly_white", margin=dict(l=50, r=20, t=50, b=40))
    return fig


def preference_trace_keys() -> list[str]:
    return [k for keys in PREFERENCE_PANELS.values() for k in keys]


def metrics_grid(records: Sequence[MetricsRecord], keys: Sequence[str],
                 runs: dict[str, Sequence[MetricsRecord]] | None = None, title: str = "") -> go.Figure:
    """One small panel per metric key; with `runs`, one trace per run in every panel
    (overlaid curves for comparison)."""
    runs = runs if runs is not None else {"": records}
    keys = list(keys)
    cols = min(2, max(1, len(keys)))
    rows = max(1, -(-len(keys) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=keys or ["(no metrics)"])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
               "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    for i, key in enumerate(keys):
        for j, (label, recs) in enumerate(runs.items()):
            xs, ys = series(recs, key)
            fig.add_scatter(x=xs, y=ys, mode="lines+markers" if key.startswith("eval") else "lines",
                            name=label or key, legendgroup=label or key, showlegend=i == 0,
                            line=dict(color=palette[j % len(palette)]),
                            row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title_text="step")
    fig.update_layout(title=title, height=260 * rows + 60, template="plotly_white",
                      margin=dict(l=50, r=20, t=60, b=40))
    return fig


def final_values(records: Sequence[MetricsRecord], summary: dict | None = None,
                 keys: Sequence[str] = LOSS_KEYS + PREFERENCE_KEYS) -> dict[str, Any]:
    """Last logged value of each key (the summary's value where it has one)."""
    out: dict[str, Any] = {}
    for key in keys:
        _, ys = series(records, key)
        if ys:
            out[key] = round(ys[-1], 4)
    for src, dst in (("train_loss", "loss"), ("eval_loss", "eval_loss")):
        if summary and isinstance(summary.get(src), (int, float)) and dst not in out:
            out[dst] = round(float(summary[src]), 4)
    return out


def samples_table_html(samples: Sequence[MetricsRecord], limit: int = 20) -> str:
    rows = [r for r in samples if r.kind is Kind.SAMPLE][-limit:]
    if not rows:
        return "<p><i>no samples yet</i></p>"
    body = "".join(
        f"<tr><td>{r.step}</td><td>{_cell(r.values.get('prompt'))}</td>"
        f"<td>{_cell(r.values.get('completion'))}</td></tr>" for r in rows)
    return ("<table class='wb-samples'><thead><tr><th>step</th><th>prompt</th><th>completion</th>"
            f"</tr></thead><tbody>{body}</tbody></table>")


def _cell(text: Any, limit: int = 400) -> str:
    text = "" if text is None else str(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return html.escape(text).replace("\n", "<br>")


@dataclass
class ReportSection:
    title: str
    html: str = ""
    figures: list[go.Figure] = field(default_factory=list)


def write_html_report(path: str | Path, title: str, sections: Sequence[ReportSection]) -> Path:
    """One self-contained HTML page (plotly.js inlined once, so it opens offline)."""
    path = Path(path)
    parts, first = [], True
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>{s.html}")
        for fig in s.figures:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
            first = False
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
            ".failed{color:#b00}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path
