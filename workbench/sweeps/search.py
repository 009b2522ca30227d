"""A sweep's `search:` block: an Optuna study over the template's parameters instead of a grid.

    search:
      metric: eval_loss            # read from each trial's run (metrics.jsonl records)
      direction: minimize          # or maximize
      n_trials: 8
      sampler: tpe                 # or random
      seed: 0
      space:
        learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}   # float (int when low/high/step are ints)
        peft: [lora, full]                                      # categorical
        peft.r: {low: 4, high: 32, step: 4}                     # a PEFT knob (peft_args.r); method.X likewise
      pruner: median               # median | threshold | none, or {name: threshold, upper: 10.8, n_warmup_steps: 2}
      storage: study.db            # optional sqlite file (relative to the sweep folder); default optuna.journal
      enqueue: [{learning_rate: 1.0e-6}]   # parameter sets tried first (Optuna's enqueue_trial)

The coordinating process asks the study for a trial, runs it as one notebook on the engine
(at most `workers` at a time), tails the trial's metrics.jsonl and reports each value of the
metric; when the pruner says so it writes the run's STOP file (the same stop as the app's Stop
button: the run checkpoints, is marked stopped and can be resumed) and tells the study the
trial was pruned. The report adds the study's history and parameter importances.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UnknownNameError, WorkbenchError

SEARCH_KEYS = ("metric", "direction", "n_trials", "sampler", "seed", "space", "pruner", "storage", "enqueue",
               "study")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "threshold", "none")
NESTED = {"peft": "peft_args", "method": "method_args"}
# Metrics a run can log besides the report's loss and preference keys: TRL's SFT/eval extras,
# the on-policy rounds' values; `harness/<task>/<metric>` (eval_tasks) is accepted by prefix.
EXTRA_METRICS = ("mean_token_accuracy", "eval_mean_token_accuracy", "entropy", "eval_entropy", "grad_norm",
                 "reward_mean", "reward_std", "sample_accuracy", "accuracy", "eval_accuracy", "kl_to_ref",
                 "length_mean", "tokens_per_s")
POLL_S = 0.25


@dataclass
class SearchSpec:
    metric: str
    direction: str = "minimize"
    n_trials: int = 8
    sampler: str = "tpe"
    seed: int | None = 0
    space: dict[str, Any] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    storage: str | None = None
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    study_name: str = "workbench-sweep"
    study: Any = None                # the optuna.Study once run


def known_metrics() -> tuple[str, ...]:
    from ..reports import LOSS_KEYS, PREFERENCE_KEYS

    return tuple(LOSS_KEYS) + tuple(PREFERENCE_KEYS) + EXTRA_METRICS


def parse_search(data: Any, template: Path, shared: dict, where: str) -> SearchSpec:
    """Check the whole block now (one line naming the key), before any folder exists."""
    if not isinstance(data, dict):
        raise WorkbenchError(f"{where}: search must be a mapping (metric, direction, n_trials, space, …)")
    for key in data:
        if key not in SEARCH_KEYS:
            raise UnknownNameError(f"search key in {where}", key, SEARCH_KEYS)
    metric = data.get("metric")
    if not isinstance(metric, str) or not metric:
        raise WorkbenchError(f"{where}: search.metric is missing (e.g. eval_loss)")
    if metric not in known_metrics() and not metric.startswith("harness/"):
        raise UnknownNameError(f"search.metric in {where} (a value runs log)", metric, known_metrics())
    direction = data.get("direction", "minimize")
    if direction not in ("minimize", "maximize"):
        raise WorkbenchError(f"{where}: search.direction must be minimize or maximize, got {direction!r}")
    n_trials = data.get("n_trials", 8)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise WorkbenchError(f"{where}: search.n_trials must be an integer >= 1, got {n_trials!r}")
    sampler = data.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise UnknownNameError(f"search.sampler in {where}", str(sampler), SAMPLERS)
    seed = data.get("seed", 0)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise WorkbenchError(f"{where}: search.seed must be an integer, got {seed!r}")
    space = data.get("space")
    if not isinstance(space, dict) or not space:
        raise WorkbenchError(f"{where}: search.space must be a non-empty mapping of parameter: range or choices")
    for name, dist in space.items():
        _check_dist(name, dist, where)
    # Every searched name is something the template accepts (peft.X / method.X go into its *_args dicts).
    from ..notebooks import check_parameters

    sample = {name: _any_value(dist) for name, dist in space.items()}
    check_parameters(template, trial_parameters(shared, sample))
    pruner = data.get("pruner", "median")
    pruner = {"name": pruner} if isinstance(pruner, str) else pruner
    if not isinstance(pruner, dict) or pruner.get("name") not in PRUNERS:
        name = pruner.get("name") if isinstance(pruner, dict) else pruner
        raise UnknownNameError(f"search.pruner in {where}", str(name), PRUNERS)
    _make_pruner(pruner, where)  # its knobs, checked now
    storage = data.get("storage")
    if storage is not None and not isinstance(storage, str):
        raise WorkbenchError(f"{where}: search.storage must be a file path, got {storage!r}")
    enqueue = data.get("enqueue") or []
    if not isinstance(enqueue, list) or not all(isinstance(e, dict) for e in enqueue):
        raise WorkbenchError(f"{where}: search.enqueue must be a list of parameter mappings")
    for i, item in enumerate(enqueue):
        for name in item:
            if name not in space:
                raise UnknownNameError(f"parameter in search.enqueue[{i}] of {where} (not in search.space)",
                                       name, space)
    return SearchSpec(metric, direction, n_trials, sampler, seed, dict(space), pruner, storage, list(enqueue),
                      str(data.get("study") or "workbench-sweep"))


def _check_dist(name: str, dist: Any, where: str) -> None:
    if isinstance(dist, list):
        if not dist:
            raise WorkbenchError(f"{where}: search.space.{name} must list at least one choice")
        return
    if not isinstance(dist, dict) or "low" not in dist or "high" not in dist:
        raise WorkbenchError(f"{where}: search.space.{name} must be a list of choices or "
                             "{low: …, high: …, log: true|false, step: …}")
    for key in dist:
        if key not in ("low", "high", "log", "step"):
            raise UnknownNameError(f"key of search.space.{name} in {where}", key, ("low", "high", "log", "step"))
    lo, hi = dist["low"], dist["high"]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (lo, hi)) or lo > hi:
        raise WorkbenchError(f"{where}: search.space.{name} needs numbers low <= high, got {lo!r}..{hi!r}")
    if dist.get("log") and lo <= 0:
        raise WorkbenchError(f"{where}: search.space.{name} with log: true needs low > 0, got {lo!r}")
    if dist.get("log") and dist.get("step") is not None:
        raise WorkbenchError(f"{where}: search.space.{name}: step and log: true cannot be combined (Optuna)")


def _is_int_range(dist: dict) -> bool:
    return all(isinstance(dist.get(k), int) and not isinstance(dist.get(k), bool)
               for k in ("low", "high")) and isinstance(dist.get("step", 1), int)


def _any_value(dist):
    return dist[0] if isinstance(dist, list) else dist["low"]


def suggest(trial, space: dict) -> dict[str, Any]:
    out = {}
    for name, dist in space.items():
        if isinstance(dist, list):
            out[name] = trial.suggest_categorical(name, dist)
        elif _is_int_range(dist):
            out[name] = trial.suggest_int(name, dist["low"], dist["high"], step=dist.get("step", 1),
                                          log=bool(dist.get("log")))
        else:
            out[name] = trial.suggest_float(name, float(dist["low"]), float(dist["high"]), step=dist.get("step"),
                                            log=bool(dist.get("log")))
    return out


def trial_parameters(shared: dict, params: dict) -> dict:
    """The notebook's parameters for one trial: `peft.r: 8` becomes peft_args: {r: 8} (merged
    with the shared peft_args)."""
    out = dict(shared)
    for name, value in params.items():
        head, _, rest = name.partition(".")
        if rest and head in NESTED:
            out[NESTED[head]] = {**(out.get(NESTED[head]) or {}), rest: value}
        else:
            out[name] = value
    return out


def _make_pruner(spec: dict, where: str):
    import optuna

    kwargs = {k: v for k, v in spec.items() if k != "name"}
    cls = {"median": optuna.pruners.MedianPruner, "threshold": optuna.pruners.ThresholdPruner,
           "none": optuna.pruners.NopPruner}[spec["name"]]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise WorkbenchError(f"{where}: search.pruner {spec['name']}: {e}") from None


def _make_study(s: SearchSpec, out_dir: Path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=s.seed) if s.sampler == "tpe"
               else optuna.samplers.RandomSampler(seed=s.seed))
    if s.storage:
        path = Path(s.storage) if Path(s.storage).is_absolute() else out_dir / s.storage
        storage: Any = f"sqlite:///{path.resolve()}"
    else:  # a journal file: safe for several processes appending to the same study
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage = JournalStorage(JournalFileBackend(str((out_dir / "optuna.journal").resolve())))
    study = optuna.create_study(study_name=s.study_name, storage=storage, sampler=sampler,
                                pruner=_make_pruner(s.pruner, "search"), direction=s.direction,
                                load_if_exists=True)
    return study


class _Watcher:
    """Tails one trial's metrics.jsonl (complete lines only) and reports the metric to Optuna."""

    def __init__(self, trial, run_dir: Path, metric: str):
        self.trial, self.path, self.metric = trial, run_dir / "metrics.jsonl", metric
        self.offset, self.reported, self.pruned_at = 0, set(), None
        self.stop_file = run_dir / "STOP"

    def poll(self) -> None:
        if self.pruned_at is not None or not self.path.is_file():
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self.offset += end
        for line in chunk[:end].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            value, step = rec.get(self.metric), rec.get("step")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or step in self.reported:
                continue
            self.reported.add(step)
            self.trial.report(float(value), int(step))
            if self.trial.should_prune():
                # The run's own stop: checkpoint, status "stopped", resumable (workbench train --resume).
                self.stop_file.touch()
                self.pruned_at = int(step)
                return


def _final_value(run_dir: str | None, metric: str) -> float | None:
    from ..runs import open_run

    if not run_dir or not (Path(run_dir) / "config.json").is_file():
        return None
    values = [r.get(metric) for r in open_run(run_dir).records()]
    values = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return float(values[-1]) if values else None


def run_search(spec, out_dir: Path, eng, n_workers: int, extra_env: dict, progress: bool = True):
    """The ask/tell loop: at most `n_workers` trials in flight on the engine."""
    from optuna.trial import TrialState
    from tqdm.auto import tqdm

    from ..notebooks import notebook_parameters
    from . import SweepResult, _slug, label_of, result_of

    s: SearchSpec = spec.search
    study = _make_study(s, out_dir)
    s.study = study
    results, retry = _continue_study(study, spec, out_dir)
    for params in s.enqueue:  # after the check that this folder's study is this search
        study.enqueue_trial(params, skip_if_exists=True)
    if results and progress:
        print(f"{len(results)} of {s.n_trials} trials finished earlier in {out_dir}: kept", file=sys.stderr)
    resumable = "resume" in notebook_parameters(spec.template)
    to_ask, pending, asked = max(0, s.n_trials - len(results)), {}, 0
    bar = tqdm(total=to_ask, desc=f"search ({eng.name})", unit="trial", disable=not (progress and to_ask))
    while asked < to_ask or pending:
        while asked < to_ask and len(pending) < n_workers:
            trial = study.ask()
            params = suggest(trial, s.space)
            d = retry.pop(_key(params), None)  # an interrupted trial's folder: its run goes on from its checkpoint
            resume = d is not None and resumable and (d / "run" / "config.json").is_file()
            d = d or out_dir / _slug(trial.number, params)
            trial.set_user_attr("folder", d.name)
            run_dir = (d / "run").resolve()
            nb_params = {**trial_parameters(spec.parameters, params), "run_dir": str(run_dir),
                         **({"resume": True} if resume else {})}
            fut = eng.submit(str(spec.template), str(d), nb_params, spec.timeout, spec.resources, extra_env)
            pending[fut] = (trial, params, d, _Watcher(trial, run_dir, s.metric))
            asked += 1
        for w in [p[3] for p in pending.values()]:
            w.poll()
        done = [f for f in pending if f.done()]
        if not done:
            time.sleep(POLL_S)
            continue
        for fut in done:
            trial, params, d, w = pending.pop(fut)
            nb, run_dir, secs, err = result_of(fut)
            w.poll()
            value = _final_value(run_dir, s.metric) if not err else None
            status = None
            trial.set_user_attr("seconds", secs)
            if w.pruned_at is not None:
                study.tell(trial, state=TrialState.PRUNED)
                status = "pruned"
            elif err or value is None or not math.isfinite(value):
                trial.set_user_attr("error", err or f"{s.metric} = {value}")
                study.tell(trial, state=TrialState.FAIL)
                if not err and run_dir and value is None and not _any_complete(study):
                    for other in pending:
                        other.cancel()
                    raise WorkbenchError(f"search.metric {s.metric!r}: trial {trial.number}'s run logged no such "
                                         f"value (see {run_dir}/metrics.jsonl); pick a metric the runs log")
            else:
                study.tell(trial, value)
            results.append(SweepResult(trial.number, label_of(params), params, d, Path(nb) if nb else None,
                                       Path(run_dir) if run_dir else None, secs, err, status))
            bar.update(1)
            if err:
                bar.write(f"trial {trial.number} ({label_of(params)}) failed: {err}")
            elif status:
                bar.write(f"trial {trial.number} ({label_of(params)}) pruned at step {w.pruned_at}")
    bar.close()
    return sorted(results, key=lambda r: r.index)


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _identity(spec) -> dict:
    """What makes a second invocation into the same folder the same search."""
    s = spec.search
    return json.loads(json.dumps({"template": spec.template.name, "parameters": spec.parameters, "metric": s.metric,
                                  "direction": s.direction, "space": s.space}, default=str))


def _continue_study(study, spec, out_dir: Path) -> tuple[list, dict[str, Path]]:
    """A study an earlier invocation left in this folder: (the results of its finished trials,
    kept as they are and counted towards n_trials; {parameters: folder} of the trials it left
    running, which are marked failed and queued again so their runs resume). A folder holding
    another search is one line; a new study records what it searches."""
    from optuna.trial import TrialState

    from ..config import differing_keys
    from . import SweepResult, _slug, label_of

    mine, theirs = _identity(spec), study.user_attrs.get("search")
    if theirs is None:
        study.set_user_attr("search", mine)
    elif theirs != mine:
        differ = differing_keys(mine, theirs)
        raise WorkbenchError(f"{out_dir} holds another search (differs in: {', '.join(differ)}); "
                             "pick another -o/--output folder")
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return [], {}
    s: SearchSpec = spec.search
    if s.seed is not None:  # a sampler seeded as before would suggest the earlier trials' parameters again
        study.sampler = type(study.sampler)(seed=s.seed + len(trials))
    interrupted = list(study.user_attrs.get("interrupted", []))
    retry: dict[str, Path] = {}
    for t in trials:
        if t.state is TrialState.RUNNING:  # its coordinator was stopped: Optuna cannot restart a trial
            params = t.params or t.system_attrs.get("fixed_params", {})  # stopped before suggest(): enqueued ones
            study.tell(t.number, state=TrialState.FAIL)
            study.enqueue_trial(params, skip_if_exists=False)
            interrupted.append(t.number)
            retry[_key(params)] = out_dir / t.user_attrs.get("folder", _slug(t.number, params))
    study.set_user_attr("interrupted", interrupted)
    results = []
    for t in trials:
        if t.number in interrupted or t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            continue
        d = out_dir / t.user_attrs.get("folder", _slug(t.number, t.params))
        nb, run = d / spec.template.name, d / "run"
        error = (t.user_attrs.get("error") or "failed") if t.state is TrialState.FAIL else None
        results.append(SweepResult(t.number, label_of(t.params), dict(t.params), d, nb if nb.is_file() else None,
                                   run if run.is_dir() else None, float(t.user_attrs.get("seconds", 0.0)), error,
                                   "pruned" if t.state is TrialState.PRUNED else None))
    return results, retry


def _any_complete(study) -> bool:
    from optuna.trial import TrialState

    return any(t.state is TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def study_sections(spec, folder: Path) -> list:
    """The report's study part: best trial, optimisation history, parameter importances."""
    import html

    from optuna.trial import TrialState
    from optuna.visualization import plot_optimization_history, plot_param_importances

    from ..reports import ReportSection

    s: SearchSpec = spec.search
    study = s.study
    if study is None:
        return []
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    counts = ", ".join(f"{sum(t.state is st for t in trials)} {st.name.lower()}"
                       for st in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    head = (f"<p>Optuna study <code>{html.escape(study.study_name)}</code>: {s.direction} "
            f"<code>{html.escape(s.metric)}</code>, {s.sampler} sampler, {s.pruner['name']} pruner; "
            f"{len(trials)} trials ({counts}).</p>")
    if complete:
        best = study.best_trial
        head += (f"<p>Best: trial {best.number}, {html.escape(s.metric)} = {best.value:.6g}, "
                 f"<code>{html.escape(label_of_params(best.params))}</code></p>")
    figures = [plot_optimization_history(study)] if complete else []
    if len(complete) >= 2:
        try:
            figures.append(plot_param_importances(study))
        except (RuntimeError, ValueError, ZeroDivisionError) as e:  # e.g. every trial had the same value
            head += f"<p>Parameter importances unavailable ({html.escape(str(e).splitlines()[0])}).</p>"
    else:
        head += (f"<p>Parameter importances need at least 2 completed trials; this study has "
                 f"{len(complete)}.</p>")
    return [ReportSection("Search (Optuna)", head, figures)]


def label_of_params(params: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())
