"""`workbench.evaluate(...)`: lm-evaluation-harness on in-memory models, results written
where they belong. Everything is checked before the first model runs, and files are written
only after every evaluation finished, so a bad input or a crash leaves nothing half-written."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from ..errors import WorkbenchError
from .config import EvalConfig
from .results import EvalResult, append_records, scores_from, slug, write_json_atomic, write_task_files

Progress = Callable[[int, int, str], None]   # (done, total, label)


def _spec_name(spec, i: int) -> str:
    if isinstance(spec, (str, Path)):
        return str(spec)
    return getattr(spec, "name", None) or f"model{i}"


def _run_dir(spec) -> Path | None:
    """The run directory a spec names (results go into it), else None."""
    from ..analysis.resolve import is_run_dir

    if isinstance(spec, (str, Path)) and not str(spec).startswith("urial:") and is_run_dir(spec):
        return Path(str(spec)).expanduser()
    return None


def _check_out(out) -> Path:
    from ..runs.store import holds_run, refuse_run_owned

    out = Path(out).expanduser()
    refuse_run_owned(out, "--out")
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"--out {out}: exists and is not a directory")
    if holds_run(out):  # its summary.json and eval/ belong to the run's own model
        raise WorkbenchError(f"--out {out} is a run directory; pass it as a model to evaluate the run, or pick "
                             "another folder for the results")
    probe = out
    while not probe.exists():
        probe = probe.parent
    import os
    if not os.access(probe, os.W_OK):
        raise WorkbenchError(f"--out {out}: cannot write under {probe} (permission denied)")
    return out


def _load(spec, name: str):
    """The resolved side, or one line saying why the model cannot load."""
    from ..analysis.resolve import resolve_side

    try:
        return resolve_side(spec, name=name if isinstance(spec, (str, Path)) else None)
    except (WorkbenchError, KeyboardInterrupt):
        raise
    except Exception as e:  # corrupt weights, a config transformers cannot read, out of memory …
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise WorkbenchError(f"model {name!r} cannot be loaded ({type(e).__name__}: {first})") from None


def evaluate(models, tasks: Sequence[str] | str | None = None, *, limit: int | None = None, out=None,
             config: EvalConfig | None = None, write: bool = True, progress: Progress | None = None,
             **settings) -> EvalResult:
    """Evaluate one or more models on harness tasks.

    models: a spec or a list of specs — built-in model name, hub id, local model dir, run
    directory, `urial:<model>`, a (model, tokenizer) pair or a resolved Side (so a training
    callback can pass the model it holds). tasks/limit/settings: EvalConfig fields.
    A run directory gets eval/<task>.json and one Kind.EVAL record per task in its
    metrics.jsonl (under the run's lock; refused while another process holds it); other
    models' results go under `out` (when given). write=False writes nothing."""
    from ..analysis.resolve import check_spec
    from ..runs.lock import RunLock
    from . import harness

    cfg = config or EvalConfig()
    if tasks is not None:
        cfg.tasks = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    if limit is not None or config is None:
        cfg.limit = limit if limit is not None else cfg.limit
    for k, v in settings.items():
        if not hasattr(cfg, k):
            raise WorkbenchError(f"unknown evaluation setting {k!r}; known: {', '.join(cfg.to_dict())}")
        setattr(cfg, k, v)
    cfg.validate()
    specs = list(models) if isinstance(models, list) else [models]
    if not specs:
        raise WorkbenchError("no model to evaluate")
    out_dir = _check_out(out) if (out is not None and write) else None

    # 1. Check every input before loading any model: specs, tasks (their data), run locks.
    for s in specs:
        check_spec(s)
    for t in cfg.tasks:
        harness.load_task(t, cfg)
    locks = []
    try:
        if write:
            for s in specs:
                rd = _run_dir(s)
                if rd is not None and all(lk.path.parent != rd for lk in locks):
                    locks.append(RunLock(rd).acquire())
        # 2. Load every model (a model that cannot load fails before any evaluation), then evaluate.
        total, done, scores, sides = len(specs) * len(cfg.tasks), 0, [], []
        for i, spec in enumerate(specs):
            name = _spec_name(spec, i)
            if progress:
                progress(0, total, f"loading {name}")
            sides.append(_load(spec, name))
        per_model: list[tuple[object, str, list]] = []
        for spec, side in zip(specs, sides):
            was_training = getattr(side.model, "training", False)
            lm = harness.make_lm(side, cfg)
            mine = []
            try:
                for task in cfg.tasks:
                    if progress:
                        progress(done, total, f"{side.name}: {task}")
                    t0 = time.time()
                    with side.context():
                        raw = harness.run_task(lm, task, cfg, chat=harness.chat_template_on(side, cfg))
                    seconds = round(time.time() - t0, 2)
                    mine += scores_from(raw, side.name, cfg.limit, cfg.to_dict() | {"seconds": seconds})
                    done += 1
            finally:
                if was_training:
                    side.model.train()
            scores += mine
            per_model.append((spec, side.name, mine))
        if progress:
            progress(total, total, "done")
        result = EvalResult(scores, cfg.to_dict())
        # 3. Write, only now that every evaluation finished.
        if write:
            seen_runs = set()
            for spec, name, mine in per_model:
                rd = _run_dir(spec)
                if rd is not None and rd not in seen_runs:
                    seen_runs.add(rd)
                    result.written += write_task_files(rd, mine)
                    append_records(rd, mine)
                elif out_dir is not None:   # a run keeps its own results; --out gets the rest
                    folder = out_dir if len(specs) == 1 and rd is None else out_dir / slug(name)
                    result.written += write_task_files(folder, mine)
            if out_dir is not None:
                summary = out_dir / "summary.json"
                write_json_atomic(summary, {"config": cfg.to_dict(), "table": result.table().to_dict("records")})
                md = out_dir / "summary.md"
                tmp = md.with_name(f".{md.name}.tmp")
                tmp.write_text(result.to_markdown() + "\n")
                tmp.replace(md)
                result.written += [str(summary), str(md)]
        return result
    finally:
        for lock in locks:
            lock.release()
