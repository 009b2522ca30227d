"""HTML views of a token-shift run: each output token coloured by category, with a
tooltip giving its base rank, both probabilities and the base's top-k."""
from __future__ import annotations

import html

import plotly.io as pio

from .plots import CATEGORY_COLOURS, show_token

_STYLE = """
<style>
.tds-doc {font-family: system-ui, sans-serif; max-width: 1100px;}
.tds-out {font-family: ui-monospace, monospace; white-space: pre-wrap; line-height: 1.7;
          border: 1px solid #ddd; padding: 8px; border-radius: 4px;}
.tds-prompt {color: #555; white-space: pre-wrap; margin: 12px 0 4px;}
.tds-tok {border-radius: 3px;}
.tds-unshifted {background: none;}
.tds-marginal {background: %(marginal)s55;}
.tds-shifted {background: %(shifted)s66;}
.tds-legend span {padding: 1px 6px; margin-right: 8px;}
.tds-table td, .tds-table th {padding: 2px 10px; text-align: right;}
</style>
""" % {k: v for k, v in CATEGORY_COLOURS.items()}


def _tooltip(row) -> str:
    top = ", ".join(f"{show_token(t)} {p:.3f}" for t, p in row.base_topk)
    return (f"{row.category}: base rank {row.base_rank}\n"
            f"p_base {row.base_prob:.4f}  p_tuned {row.tuned_prob:.4f}  KL {row.kl:.4f}\n"
            f"base top-{len(row.base_topk)}: {top}")


def token_view(result, max_prompts: int | None = None) -> str:
    """Prompts and coloured outputs (no plots): also the notebook `_repr_html_`."""
    parts = [_STYLE, '<div class="tds-doc">', _legend()]
    groups = result.records.groupby("prompt_id", sort=True)
    for n, (pid, rows) in enumerate(groups):
        if max_prompts is not None and n >= max_prompts:
            parts.append(f"<p>… {groups.ngroups - n} more prompts</p>")
            break
        spans = "".join(
            f'<span class="tds-tok tds-{r.category}" title="{html.escape(_tooltip(r))}">'
            f"{html.escape(r.token)}</span>" for r in rows.itertuples())
        parts.append(f'<div class="tds-prompt"><b>Prompt {pid}:</b> '
                     f"{html.escape(result.prompts[pid])}</div>"
                     f'<div class="tds-out">{spans}</div>')
    parts.append("</div>")
    return "\n".join(parts)


def _legend() -> str:
    return ('<p class="tds-legend">'
            '<span class="tds-unshifted" style="border:1px solid #ccc">unshifted (base rank 1)</span>'
            '<span class="tds-marginal">marginal (rank 2–3)</span>'
            '<span class="tds-shifted">shifted (rank &gt; 3)</span>'
            "— hover a token for its base rank, probabilities and the base's top-k</p>")


def _summary_table(result) -> str:
    fr = result.fractions
    tps = result.tokens_per_s
    rows = [("tokens analysed", f"{result.n_tokens}"), ("prompts", f"{len(result.prompts)}"),
            *[(k, f"{v:.1%}") for k, v in fr.items()],
            ("mean KL(tuned‖base)", f"{result.records['kl'].mean():.4f}" if result.n_tokens else "–"),
            ("analysed tokens/s (analysis / end to end)",
             f"{tps['analysis']:.0f} / {tps['end_to_end']:.0f}"),
            ("precision (requested → used)", html.escape(
                f"{result.settings.get('precision', '?')} → {result.settings.get('precision_resolved', '?')}"))]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="tds-table">{body}</table>'


def shift_report(result, *, plots: bool = True, max_prompts: int | None = None) -> str:
    """A standalone HTML page: summary, plots (plotly.js inlined once, so the file
    works offline) and the coloured token view."""
    title = html.escape(f"Token distribution shift: {result.tuned_name} vs {result.base_name}")
    figs = ""
    if plots and result.n_tokens:
        figs = "\n".join(pio.to_html(f, full_html=False, include_plotlyjs=(i == 0))
                         for i, f in enumerate([result.position_figure(),
                                                result.top_shifted_figure()]))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1 style='font-family:system-ui'>{title}</h1>{_summary_table(result)}"
            f"{figs}{token_view(result, max_prompts=max_prompts)}</body></html>")
