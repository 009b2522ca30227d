"""A one-page HTML summary of a check: per notebook its status, duration, profile and a
link to its executed notebook's HTML export (where every figure it showed is rendered),
plus the failing cell and the error's last lines."""
from __future__ import annotations

import html
import os
import time
from pathlib import Path

from .runner import CheckResult, NotebookResult

_COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "timed out": "#9a6700"}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1f2328; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4em .8em; border-bottom: 1px solid #d0d7de; vertical-align: top; }
.status { font-weight: 600; white-space: nowrap; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; font-size: 85%; margin: .3em 0; }
.num { text-align: right; white-space: nowrap; }
"""


def _link(target: Path | None, report: Path, text: str) -> str:
    if not target:
        return ""
    href = os.path.relpath(Path(target).resolve(), report.resolve().parent)
    return f'<a href="{html.escape(Path(href).as_posix(), quote=True)}">{html.escape(text)}</a>'


def _row(r: NotebookResult, report: Path) -> str:
    colour = _COLOURS.get(r.status, "#1f2328")
    links = " · ".join(x for x in (_link(r.html, report, "HTML"), _link(r.executed, report, "ipynb")) if x)
    detail = ""
    f = r.failure or {}
    if f:
        cell = f"cell {f['cell']}: " if f.get("cell") is not None else ""
        detail = f"<div>{html.escape(cell + (f.get('message') or ''))}</div>"
        if f.get("source"):
            detail += f"<pre>{html.escape(f['source'])}</pre>"
        if f.get("lines"):
            detail += f"<pre>{html.escape(chr(10).join(f['lines']))}</pre>"
    params = ", ".join(f"{k}={v!r}" for k, v in r.parameters.items()) or "no parameters set"
    profile = r.profile or "notebook defaults"
    return (f'<tr class="nb" data-status="{html.escape(r.status)}"><td>{html.escape(r.name)}</td>'
            f'<td class="status" style="color:{colour}">{html.escape(r.status)}</td>'
            f'<td class="num">{r.seconds:.1f} s</td><td>{links}</td>'
            f'<td><small>{html.escape(profile)}: {html.escape(params)}</small>{detail}</td></tr>')


def render_html(check: CheckResult, report: Path) -> str:
    counts = check.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing run"
    rows = "\n".join(_row(r, report) for r in check.results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>workbench check: {html.escape(summary)}</title>
<style>{_STYLE}</style></head><body>
<h1>Notebook check</h1>
<p>{len(check.results)} notebooks: {html.escape(summary)} in {check.seconds:.1f} s
({check.jobs} parallel jobs × {check.threads} threads) — {time.strftime('%Y-%m-%d %H:%M:%S')}</p>
<table><thead><tr><th>Notebook</th><th>Status</th><th>Time</th><th>Executed</th><th>Parameters / failure</th>
</tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""


def write_html(check: CheckResult, path: str | Path) -> Path:
    """Write the summary atomically (temp file + rename); links are relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(render_html(check, path), encoding="utf-8")
    os.replace(tmp, path)
    return path
