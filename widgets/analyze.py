"""Analyze tab: what the last run did — final metrics, the token-distribution shift of the
tuned model against its base (workbench.analysis.token_shift), and an Evaluate section
(lm-evaluation-harness via workbench.evaluation: base vs tuned on built-in tasks, with
stderr). Long computations run in a background thread so the app stays responsive."""
from __future__ import annotations

import html
import threading

import ipywidgets as W

from workbench.evaluation.config import BUILTIN_TASKS, CODE_TASKS
from workbench.reports import final_values

AUTO = W.Layout(width="auto")   # a button as wide as its label (the default width cuts labels off)


def _fmt(v, se) -> str:
    if v is None:
        return "n/a"
    txt = f"{v:.4g}" if abs(v) >= 1000 else f"{v:.3f}"
    return txt + (f" ± {se:.3f}" if se is not None else "")


def eval_table_html(result, base_name: str, tuned_name: str) -> str:
    """Base vs tuned per task: primary metric ± stderr, n and the difference."""
    half = len(result.scores) // 2
    rows = []
    for b, t in zip(result.scores[:half], result.scores[half:]):
        delta = t.value - b.value if None not in (b.value, t.value) else None
        rows.append(f"<tr><td>{html.escape(b.task)}</td><td>{html.escape(b.metric)}</td><td>{b.n}</td>"
                    f"<td>{_fmt(b.value, b.stderr)}</td><td>{_fmt(t.value, t.stderr)}</td>"
                    f"<td>{'n/a' if delta is None else f'{delta:+.3f}'}</td></tr>")
    return ("<table class='wb-eval-table'><tr><th>task</th><th>metric</th><th>n</th>"
            f"<th>base: {html.escape(base_name)}</th><th>tuned: {html.escape(tuned_name)}</th><th>Δ</th></tr>"
            + "".join(rows) + "</table>")


class AnalyzePanel:
    def __init__(self, get_result, get_config, live: bool = True):
        self.get_result, self.get_config, self.live = get_result, get_config, live
        self.summary_button = W.Button(description="Summarise last run", icon="search", layout=AUTO)
        self.summary_button.add_class("wb-analyze")
        self.shift_button = W.Button(description="Token shift vs base", icon="exchange", layout=AUTO)
        self.shift_button.add_class("wb-shift")
        self.prompts = W.BoundedIntText(value=6, min=1, max=200, description="prompts")
        self.new_tokens = W.BoundedIntText(value=32, min=1, max=512, description="new tokens")
        self.out = W.HTML()
        self.out.add_class("wb-analysis")
        self.shift_out = W.HTML()
        self.shift_out.add_class("wb-shift-view")
        self.plot_box = W.Box()
        self.shift = None
        # Evaluate: lm-evaluation-harness, base vs tuned
        self.eval_tasks = W.SelectMultiple(options=list(BUILTIN_TASKS), value=("wb_arithmetic", "wb_preferences"),
                                           rows=6, description="tasks")
        self.eval_limit = W.BoundedIntText(value=20, min=1, max=100000, description="limit")
        self.allow_code = W.Checkbox(value=False, description="run model-written code (HumanEval, in a subprocess)",
                                     indent=False, layout=AUTO)
        self.eval_button = W.Button(description="Evaluate base vs tuned", icon="check-square-o", layout=AUTO)
        self.eval_button.add_class("wb-eval")
        self.eval_bar = W.IntProgress(value=0, min=0, max=1, description="eval", bar_style="info")
        self.eval_label = W.HTML("")
        self.eval_out = W.HTML()
        self.eval_out.add_class("wb-eval-view")
        self.evaluation = None
        self.summary_button.on_click(lambda _: self.update())
        self.shift_button.on_click(lambda _: self.start_shift())
        self.eval_button.on_click(lambda _: self.start_eval())
        self.widget = W.VBox([self.summary_button, self.out,
                              W.HBox([self.shift_button, self.prompts, self.new_tokens]),
                              self.shift_out, self.plot_box,
                              W.HTML("<b>Evaluate</b> (lm-evaluation-harness)"),
                              W.HBox([self.eval_tasks, W.VBox([self.eval_limit, self.allow_code, self.eval_button])]),
                              W.HBox([self.eval_bar, self.eval_label]), self.eval_out])

    def html(self) -> str:
        result = self.get_result()
        if result is None:
            return "<p>No finished run yet: train one in the Train tab.</p>"
        finals = final_values(result.records, result.summary)
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in finals.items())
        return (f"<p>run <code>{html.escape(str(result.run_dir))}</code>: {html.escape(result.status)}</p>"
                f"<table>{rows}</table>")

    def update(self) -> None:
        self.out.value = self.html()

    def start_shift(self) -> None:
        result = self.get_result()
        if result is None:
            self.shift_out.value = "<p>No finished run yet: train one in the Train tab.</p>"
            return
        self.shift_button.disabled = True
        self.shift_out.value = "<p>decoding with the tuned model and scoring with the base…</p>"
        threading.Thread(target=self.compute_shift, args=(result,), daemon=True).start()

    def compute_shift(self, result):
        """Token shift of `result`'s model against its base on the dataset's eval prompts."""
        from workbench.analysis import token_shift

        cfg = self.get_config()
        try:
            self.shift = token_shift(cfg.model, str(result.run_dir), cfg.dataset,
                                     max_prompts=self.prompts.value, max_new_tokens=self.new_tokens.value,
                                     progress=False)
            fr = self.shift.fractions
            self.shift_out.value = (f"<p>{self.shift.n_tokens} tokens: "
                                    + ", ".join(f"{k} {v:.1%}" for k, v in fr.items()) + "</p>"
                                    + self.shift._repr_html_())
            if self.live:
                import plotly.graph_objects as go

                self.plot_box.children = [go.FigureWidget(self.shift.position_figure())]
        except Exception as e:  # noqa: BLE001 — shown in the panel
            self.shift_out.value = f"<p style='color:#b00'>{html.escape(f'{type(e).__name__}: {e}')}</p>"
        finally:
            self.shift_button.disabled = False
        return self.shift

    # ---------------------------------------------------------------- evaluate
    def start_eval(self) -> None:
        result = self.get_result()
        if result is None:
            self.eval_out.value = "<p>No finished run yet: train one in the Train tab.</p>"
            return
        self.eval_button.disabled = True
        self.eval_out.value = "<p>evaluating…</p>"
        threading.Thread(target=self.compute_eval, args=(result,), daemon=True).start()

    def _progress(self, done: int, total: int, label: str) -> None:
        self.eval_bar.max, self.eval_bar.value = max(1, total), done
        self.eval_label.value = html.escape(f"{done}/{total} · {label}")

    def compute_eval(self, result):
        """Base vs tuned on the chosen tasks; the run gets eval/<task>.json and EVAL records
        (so the Compare tab shows them)."""
        from workbench.evaluation import EvalConfig
        from workbench.evaluation.api import evaluate

        cfg = self.get_config()
        tasks = list(self.eval_tasks.value)
        self.eval_bar.bar_style = "info"
        try:
            if any(t in CODE_TASKS for t in tasks) and not self.allow_code.value:
                raise ValueError("HumanEval runs model-written code: tick 'run model-written code' to allow it")
            ecfg = EvalConfig(tasks=tasks, limit=self.eval_limit.value,
                              allow_code_execution=self.allow_code.value)
            run = str(result.run_dir)
            self.evaluation = evaluate([cfg.model, run], config=ecfg, progress=self._progress)
            note = f"<p>limit {ecfg.limit} examples per task; written to {html.escape(run)}/eval/</p>"
            self.eval_out.value = eval_table_html(self.evaluation, cfg.model, run) + note
            self.eval_bar.bar_style = "success"
        except Exception as e:  # noqa: BLE001 — shown in the panel
            self.eval_bar.bar_style = "danger"
            self.eval_out.value = f"<p style='color:#b00'>{html.escape(f'{type(e).__name__}: {e}')}</p>"
        finally:
            self.eval_button.disabled = False
        return self.evaluation
