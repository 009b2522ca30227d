"""Plain-HTML notebook displays (`_repr_html_`) for the result objects users meet in
notebooks: a headline of the key figures and a small table. Strings only — no widget or
plotting imports, so the core library can use it."""
from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

_STYLE = ("<style>.wb-repr{font-family:system-ui,sans-serif;margin:4px 0}"
          ".wb-repr .wb-title{font-weight:600;margin-bottom:4px}"
          ".wb-repr .wb-figs{display:flex;flex-wrap:wrap;gap:18px;margin:4px 0 8px}"
          ".wb-repr .wb-fig b{display:block;font-size:1.35em}"
          ".wb-repr .wb-fig span{color:#666;font-size:.85em}"
          ".wb-repr table{border-collapse:collapse;font-size:.9em}"
          ".wb-repr td,.wb-repr th{padding:2px 10px;border-bottom:1px solid #eee;text-align:right}"
          ".wb-repr th{text-align:left}</style>")


def fmt(value: Any, kind: str = "") -> str:
    """A figure as text: percentages with kind="%", floats to 4 significant digits, '–' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "%":
        return f"{float(value):.1%}"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def headline(title: str, figures: Iterable[tuple[str, str]]) -> str:
    """A title line and a row of big figures, each (label, already formatted value)."""
    figs = "".join(f'<div class="wb-fig"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>'
                   for k, v in figures)
    return f'<div class="wb-title">{html.escape(title)}</div><div class="wb-figs">{figs}</div>'


def table(rows: Sequence[dict] | Any, max_rows: int = 10, columns: Sequence[str] | None = None) -> str:
    """A small HTML table from a list of dicts or a pandas DataFrame (first `max_rows` rows)."""
    if hasattr(rows, "to_dict"):  # DataFrame
        rows = rows.to_dict("records")
    rows = list(rows)
    if not rows:
        return ""
    cols = list(columns or dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
                   for r in rows[:max_rows])
    more = (f'<tr><td colspan="{len(cols)}">… {len(rows) - max_rows} more rows</td></tr>'
            if len(rows) > max_rows else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}{more}</tbody></table>"


def block(*parts: str) -> str:
    return _STYLE + '<div class="wb-repr">' + "".join(parts) + "</div>"


def run_result_html(result) -> str:
    """Display of a finished run (`RunResult`): status, steps, losses, trainable share, and a
    table of the summary's other numbers. `RunResult._repr_html_` returns this."""
    s = dict(getattr(result, "summary", None) or {})
    run_dir = getattr(result, "run_dir", "")
    status = getattr(result, "status", s.get("status", "?"))
    figures = [("status", str(status)), ("steps", fmt(s.get("steps"))),
               ("train loss (first → last)", f"{fmt(s.get('first_train_loss'))} → {fmt(s.get('train_loss'))}")]
    if s.get("eval_loss") is not None:
        figures.append(("eval loss", fmt(s.get("eval_loss"))))
    if s.get("trainable_share") is not None:
        figures.append(("trainable parameters", f"{fmt(s.get('trainable_params'))} ({fmt(s['trainable_share'], '%')})"))
    shown = {"status", "steps", "first_train_loss", "train_loss", "eval_loss", "trainable_share", "trainable_params"}
    rest = [{"key": k, "value": v} for k, v in s.items() if k not in shown
            and (isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) < 80))]
    return block(headline(f"Run {run_dir}", figures), table(rest, max_rows=12))
