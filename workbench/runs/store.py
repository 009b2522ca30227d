"""The run directory on disk: config.json, metrics.jsonl, samples.jsonl, final/ weights,
summary.json, checkpoints/ and the lock. JSON files are written to a temp file and
renamed, so a reader (or a killed process) never sees half a file; JSONL lines are
appended whole and flushed, and on resume the lines past the checkpoint are dropped so
steps stay continuous. The lifecycle that writes these lives in `run.py` (`Run`); this
module is the layout and the readers.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import WorkbenchError
from .lock import LOCK, holder
from .records import Kind, MetricsRecord

CONFIG, METRICS, SAMPLES, SUMMARY, FINAL, CHECKPOINTS, STOP = (
    "config.json", "metrics.jsonl", "samples.jsonl", "summary.json", "final", "checkpoints", "STOP")

# What a run directory holds that the workbench writes (eval/: `workbench eval` results).
RUN_OWNED = (CONFIG, METRICS, SAMPLES, SUMMARY, FINAL, CHECKPOINTS, STOP, "eval", LOCK)


def owning_run(path) -> tuple[Path, str] | None:
    """(run directory, entry) when `path` is one of a run's own files or under one of its
    folders (e.g. runs/a/config.json, runs/a/final/x), else None: writing there loses the run."""
    path = Path(path).expanduser().absolute()
    for run in path.parents:
        rel = path.relative_to(run)
        if rel.parts[0] in RUN_OWNED and holds_run(run):
            return run, rel.parts[0]
    return None


def refuse_run_owned(path, flag: str) -> None:
    """One line (WorkbenchError) when an output `path` given with `flag` is, or is under, one
    of a run's own entries: whatever a command wrote there would replace or mix with the run's."""
    owned = owning_run(path)
    if owned:
        raise WorkbenchError(f"{flag} {path} is the run {owned[0]}'s own {owned[1]}; writing there loses the "
                             "run's data: name a path outside it")


def holds_run(path: Path) -> bool:
    """A run directory, finished or still training: its config.json beside metrics.jsonl or final/."""
    return (path / CONFIG).is_file() and ((path / METRICS).is_file() or (path / FINAL).is_dir())


def runs_root() -> Path:
    return Path(os.environ.get("WORKBENCH_RUNS", "runs"))


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_jsonl(path: Path) -> list[dict]:
    """Read JSON lines, ignoring a torn last line from a killed writer."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class RunStore:
    """Writes one run directory. Created only after config, model and data validated."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- lifecycle ------------------------------------------------------------------
    def create(self, config: dict) -> None:
        write_json_atomic(self.path / CONFIG, config)

    def truncate_after(self, step: int) -> None:
        """On resume: keep only records up to the checkpoint's step."""
        for name in (METRICS, SAMPLES):
            rows = [r for r in read_jsonl(self.path / name) if r.get("step", 0) <= step]
            tmp = self.path / f".{name}.tmp"
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
            os.replace(tmp, self.path / name)

    # -- records ----------------------------------------------------------------------
    def append(self, rec: MetricsRecord) -> None:
        name = SAMPLES if rec.kind is Kind.SAMPLE else METRICS
        with open(self.path / name, "a") as f:
            f.write(json.dumps(rec.to_json()) + "\n")
            f.flush()

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.path / SUMMARY, summary)

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def stop_file(self) -> Path:
        return self.path / STOP


@dataclass
class RunInfo:
    path: Path
    config: dict
    summary: dict
    error: str | None = None   # why this directory could not be read (list_runs keeps it, marked)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        if self.error:
            return "unreadable"
        if self.config and holder(self.path):  # a process holds it: training (or resuming) now
            return "running"
        return self.summary.get("status", "interrupted" if self.config else "unknown")

    def records(self) -> list[MetricsRecord]:
        return [MetricsRecord.from_json(r) for r in read_jsonl(self.path / METRICS)]

    def samples(self) -> list[MetricsRecord]:
        return [MetricsRecord.from_json(r) for r in read_jsonl(self.path / SAMPLES)]


def read_json_object(path: Path, what: str) -> dict:
    """A JSON file that must hold an object, or one line naming the file and the fault."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WorkbenchError(f"{path}: cannot read the run's {what} ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise WorkbenchError(f"{path}: the run's {what} is not a JSON object")
    return data


def open_run(path: str | Path) -> RunInfo:
    path = Path(path)
    if not path.is_dir():
        raise WorkbenchError(f"{path} is not a run directory (not a directory)")
    if not (path / CONFIG).is_file():
        raise WorkbenchError(f"{path} is not a run directory (no {CONFIG})")
    config = read_json_object(path / CONFIG, "configuration")
    if _is_model_config(config):
        raise WorkbenchError(f"{path} is a model folder (its {CONFIG} is a transformers model config), not a run "
                             "directory")
    summary_path = path / SUMMARY
    summary = read_json_object(summary_path, "summary") if summary_path.is_file() else {}
    return RunInfo(path, config, summary)


def list_runs(root: str | Path | None = None) -> list[RunInfo]:
    """Every run under `root`; one whose config or summary is unreadable is listed with
    `error` set (status "unreadable") instead of failing the whole listing."""
    root = Path(root) if root else runs_root()
    if not root.is_dir():
        return []
    runs = [open_run_or_error(p) for p in sorted(root.iterdir()) if (p / CONFIG).is_file() and not _model_folder(p)]
    return sorted(runs, key=lambda r: (r.path / CONFIG).stat().st_mtime)


def _is_model_config(config: dict) -> bool:
    """transformers' config.json (a model folder: an export, a downloaded model), not a run's."""
    return "model_type" in config and "method" not in config


def _model_folder(path: Path) -> bool:
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # listed, as unreadable
    return isinstance(config, dict) and _is_model_config(config)


def final_weights(info: RunInfo) -> Path:
    """A run's final/ folder, or one line saying why it has none (its recorded reason when it
    failed: a NaN loss leaves no weights worth loading)."""
    final = info.path / FINAL
    if final.is_dir():
        return final
    status, reason, pid = info.summary.get("status"), info.summary.get("reason"), holder(info.path)
    why = (f"it is training now (pid {pid})" if pid else
           f"it {status}: {reason}" if status in ("failed", "interrupted") and reason else
           "it is still training, or stopped or failed before saving")
    raise WorkbenchError(f"run {info.path} has no trained weights (no {FINAL}/ folder): {why}; name a finished run")


def open_run_or_error(path: Path) -> RunInfo:
    """The run at `path`, or one with `error` set (status "unreadable") saying why not."""
    try:
        return open_run(path)
    except WorkbenchError as e:
        return RunInfo(path, {}, {}, error=str(e))


def default_run_dir(method: str, model: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return runs_root() / f"{method}-{Path(model).name}-{stamp}"


def iter_final_metrics(runs: Iterable[RunInfo]) -> Iterable[dict]:
    for r in runs:
        s = r.summary
        if not s and r.config and not r.error:  # running, or killed: how far its records got
            last = next((rec for rec in reversed(r.records()) if rec.kind is Kind.TRAIN), None)
            s = {"steps": last.step, "train_loss": last.get("loss")} if last else {}
        yield {"run": r.name, "status": r.status, **({"error": r.error} if r.error else {}),
               "method": r.config.get("method"), "peft": r.config.get("peft"), "model": r.config.get("model"),
               "steps": s.get("steps"), "train_loss": s.get("train_loss"),
               "eval_loss": s.get("eval_loss")}


def load_run_model(run_dir: str | Path, device: str | None = None):
    """(model, tokenizer, base_model_name) for a finished or stopped run: the base model
    with the run's adapter attached, or the run's full weights."""
    from ..models import load_model, pick_device

    info = open_run(run_dir)
    final = final_weights(info)
    base_name = info.config["model"]
    if (final / "adapter_config.json").is_file():
        from peft import PeftModel

        base, tok = load_model(base_name, device=device)
        model = PeftModel.from_pretrained(base, str(final))
    else:
        from transformers import AutoModelForCausalLM

        from ..models import load_tokenizer

        model = AutoModelForCausalLM.from_pretrained(str(final)).to(pick_device(device))
        tok = load_tokenizer(base_name)
    model.eval()
    return model, tok, base_name
