"""Scores out of the harness's results dict, and where they go: eval/<task>.json (atomic),
one Kind.EVAL record per task in a run's metrics.jsonl (metric names `harness/<task>/<metric>`,
so the Compare tab and the reports show them), and a summary table across models."""
from __future__ import annotations

import math
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from ..runs.records import Kind, MetricsRecord
from ..runs.store import METRICS, read_jsonl, write_json_atomic

PREFIX = "harness"


def _num(x):
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x)):
        return float(x)
    return None


@dataclass
class TaskScore:
    """One model on one task: its primary metric, every metric the harness reported, n and
    the versions that produced it."""
    model: str
    task: str
    metric: str
    value: float | None
    stderr: float | None
    n: int
    limit: int | None
    metrics: dict = field(default_factory=dict)        # name -> {"value", "stderr", "higher_is_better"}
    versions: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    def record_values(self) -> dict:
        """Flat values for a metrics record: harness/<task>/<metric>[_stderr], …/n, …/limit."""
        out = {}
        for name, m in self.metrics.items():
            out[f"{PREFIX}/{self.task}/{name}"] = m["value"]
            if m.get("stderr") is not None:
                out[f"{PREFIX}/{self.task}/{name}_stderr"] = m["stderr"]
        out[f"{PREFIX}/{self.task}/n"] = self.n
        if self.limit is not None:
            out[f"{PREFIX}/{self.task}/limit"] = self.limit
        return out


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("lm_eval", "lm-workbench", "transformers", "torch", "peft"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def scores_from(out: dict, model: str, limit: int | None, config: dict) -> list[TaskScore]:
    """TaskScores (one per leaf task and group) from simple_evaluate's results dict."""
    res, scores = out.get("results", {}), []
    for task, metrics_raw in res.items():
        hib = out.get("higher_is_better", {}).get(task, {})
        metrics = {}
        for key, v in metrics_raw.items():
            if "," not in key or "_stderr," in key:
                continue
            name, filt = key.split(",", 1)
            label = name if filt == "none" else f"{name}[{filt}]"
            metrics[label] = {"value": _num(v), "stderr": _num(metrics_raw.get(f"{name}_stderr,{filt}")),
                              "higher_is_better": hib.get(name)}
        if not metrics:
            continue
        primary = next(iter(metrics))
        n_info = out.get("n-samples", {}).get(task, {})
        n = int(n_info.get("effective", metrics_raw.get("sample_len", 0)) or 0)
        vers = versions() | {"task": out.get("versions", {}).get(task)}
        scores.append(TaskScore(model, task, primary, metrics[primary]["value"], metrics[primary]["stderr"], n,
                                limit, metrics, vers, config))
    return scores


@dataclass
class EvalResult:
    """Every (model, task) score of one evaluate() call."""
    scores: list[TaskScore]
    config: dict
    written: list[str] = field(default_factory=list)   # files written

    def table(self, all_metrics: bool = False) -> pd.DataFrame:
        """Long table: model, task, metric, value, stderr, n, limit."""
        rows = []
        for s in self.scores:
            items = s.metrics.items() if all_metrics else [(s.metric, s.metrics[s.metric])]
            rows += [{"model": s.model, "task": s.task, "metric": m, "value": v["value"], "stderr": v["stderr"],
                      "n": s.n, "limit": s.limit} for m, v in items]
        return pd.DataFrame(rows, columns=["model", "task", "metric", "value", "stderr", "n", "limit"])

    def summary(self) -> pd.DataFrame:
        """Task × model table of 'value ± stderr' (primary metric), the across-models view."""
        t = self.table()
        if t.empty:
            return t
        t["score"] = [_fmt(v, se) for v, se in zip(t["value"], t["stderr"])]
        wide = t.pivot_table(index=["task", "metric", "n"], columns="model", values="score", aggfunc="first",
                             sort=False)
        wide.columns.name = None
        return wide.reset_index()

    def value(self, model: str, task: str, metric: str | None = None):
        for s in self.scores:
            if s.model == model and s.task == task:
                m = s.metrics[metric or s.metric]
                return m["value"]
        raise KeyError((model, task))

    def records(self, step: int, model: str | None = None) -> list[MetricsRecord]:
        """One Kind.EVAL record per task (for a training callback, or a run's metrics.jsonl)."""
        return [MetricsRecord(step, Kind.EVAL, s.record_values()) for s in self.scores
                if model is None or s.model == model]

    def changes(self, base: str, z: float = 2.0) -> pd.DataFrame:
        """Each other model against `base`, task by task (primary metric): the change, its
        standard error sqrt(se_base² + se²) (independent samples), and whether |change| exceeds
        z standard errors (None where the harness gives no stderr, e.g. perplexity) — with a few
        dozen examples most changes do not."""
        t = self.table()
        if t.empty:
            return pd.DataFrame(columns=["task", "metric", "model", "base", "tuned", "change", "stderr",
                                         "beyond_noise"])
        ref = t[t["model"] == base].set_index("task")
        if ref.empty:
            raise KeyError(f"no scores for the base model {base!r}; models: {', '.join(dict.fromkeys(t['model']))}")
        rows = []
        for _, r in t[t["model"] != base].iterrows():
            if r["task"] not in ref.index:
                continue
            b = ref.loc[r["task"]]
            change = None if r["value"] is None or b["value"] is None else r["value"] - b["value"]
            ses = [x for x in (b["stderr"], r["stderr"]) if x is not None and not math.isnan(x)]
            se = math.sqrt(sum(x * x for x in ses)) if len(ses) == 2 else None
            rows.append({"task": r["task"], "metric": r["metric"], "model": r["model"], "base": b["value"],
                         "tuned": r["value"], "change": change, "stderr": se,
                         "beyond_noise": None if change is None or se is None else bool(abs(change) > z * se)})
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        """Notebook display: how many models × tasks, each model's primary scores, the table."""
        from .. import html_repr as hr

        t = self.table()
        models = list(dict.fromkeys(t["model"])) if not t.empty else []
        figures = [(f"{s.model} · {s.task} ({s.metric})", _fmt(s.value, s.stderr)) for s in self.scores[:8]]
        title = f"Evaluation: {len(models)} model(s) × {t['task'].nunique() if not t.empty else 0} task(s)"
        limit = self.config.get("limit") if isinstance(self.config, dict) else None
        if limit:
            title += f", up to {limit} examples per task"
        return hr.block(hr.headline(title, figures), hr.table(self.summary()) if not t.empty else "<p>(no scores)</p>")

    def to_markdown(self) -> str:
        s = self.summary()
        if s.empty:
            return "(no scores)"
        cols = list(s.columns)
        lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for _, r in s.iterrows()]
        return "\n".join(lines)


def _fmt(v, se) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    txt = f"{v:.4g}" if abs(v) >= 1000 else f"{v:.3f}"
    return txt + (f" ± {se:.3f}" if se is not None and not (isinstance(se, float) and math.isnan(se)) else "")


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip("/")).strip("_") or "model"


def last_step(run_dir: Path) -> int:
    """The run's step axis position to file evaluation records at: its last logged step."""
    steps = [r.get("step", 0) for r in read_jsonl(run_dir / METRICS) if isinstance(r.get("step"), int)]
    return max(steps, default=0)


def write_task_files(folder: Path, scores: list[TaskScore]) -> list[str]:
    written = []
    for s in scores:
        path = folder / "eval" / f"{slug(s.task)}.json"
        write_json_atomic(path, s.to_json())
        written.append(str(path))
    return written


def append_records(run_dir: Path, scores: list[TaskScore]) -> None:
    from ..runs.store import RunStore

    step, store = last_step(run_dir), RunStore(run_dir)
    for s in scores:
        store.append(MetricsRecord(step, Kind.EVAL, s.record_values()))
