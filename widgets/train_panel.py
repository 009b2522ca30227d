"""Train panel: Start / Stop, progress with ETA, live curves, samples and readouts.

Training runs in a background thread so the kernel stays free to handle the Stop click
and the plots keep updating (widget updates from a thread are sent as comm messages).
Headless, `run_sync` trains in the calling thread and shows static figures at the end.
"""
from __future__ import annotations

import dataclasses
import html
import threading
import traceback
from pathlib import Path
from typing import Callable

import ipywidgets as W

from workbench.config import TrainConfig
from workbench.errors import WorkbenchError
from workbench.runs.records import Event, Kind, MetricsRecord

from .display import show_html
from .live_curves import LiveCurves
from .progress import Progress
from .samples import SamplesTable


def evaluates_first(cfg: TrainConfig) -> bool:
    """Whether this run's trainer evaluates before its first step: an eval split and a
    method whose `eval_on_start` knob (the preference methods') is on."""
    if not getattr(cfg, "eval_rows", 0):
        return False
    try:
        import dataclasses

        from workbench.methods import get_method

        fields = {f.name: f for f in dataclasses.fields(get_method(cfg.method).config_cls)}
    except Exception:  # noqa: BLE001 — an unknown method fails later, with its own message
        return False
    if "eval_on_start" not in fields:
        return False
    return bool((cfg.method_args or {}).get("eval_on_start", fields["eval_on_start"].default))


class TrainPanel:
    def __init__(self, get_config: Callable[[], TrainConfig], live: bool = True):
        self.get_config = get_config
        self.live = live
        self.curves = LiveCurves(live=live)
        self.samples = SamplesTable()
        self.progress = Progress()
        self.result = None
        self.error: str | None = None
        self._cfg: TrainConfig | None = None
        self._run_dir: str | None = None  # the last run's folder, known before train() returns (or raises)
        self._params = ""
        self._trained = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start_button = W.Button(description="Start", button_style="success", icon="play")
        self.start_button.add_class("wb-start")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.stop_button.add_class("wb-stop")
        self.resume_button = W.Button(description="Resume", icon="forward", disabled=True,
                                      tooltip="continue the last run from its newest checkpoint (its own "
                                              "settings; max_steps from the form when larger)")
        self.resume_button.add_class("wb-resume")
        self.status = W.HTML("ready")
        self.status.add_class("wb-status")
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.resume_button.on_click(lambda _: self.resume())
        parts = [W.HBox([self.start_button, self.stop_button, self.resume_button, self.status]),
                 self.progress.widget]
        if live:
            parts.append(self.curves.widget)
        parts.append(W.VBox([W.HTML("<b>Samples</b>"), self.samples.widget]))
        self.widget = W.VBox(parts)

    # -- state --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _set_status(self, text: str) -> None:
        self.status.value = html.escape(text)

    def on_record(self, rec: MetricsRecord) -> None:
        # Called from the training thread: a display problem must never stop training.
        try:
            self.curves.add(rec)
            self.samples.add(rec)
            self.progress.add(rec)
            self._phase(rec)
        except Exception:  # noqa: BLE001
            traceback.print_exc()

    def _phase(self, rec: MetricsRecord) -> None:
        """Say what the run is doing: the trainer evaluates before step 1 (preference methods'
        eval_on_start) and every eval_steps, and those evaluations can take longer than steps."""
        cfg = self._cfg
        if rec.event == Event.START:
            params = rec.values.get("trainable_params")
            self._params = f" ({params:,} trainable parameters)" if isinstance(params, int) else ""
            self._trained = False
            if cfg is not None and evaluates_first(cfg):
                self._set_status(f"evaluating before step {rec.step + 1} …{self._params}")
                self.progress.note(f"evaluating before step {rec.step + 1} …")
            else:
                self._set_status(f"training{self._params}")
        elif rec.kind is Kind.EVAL:
            if not self._trained:
                loss = rec.values.get("eval_loss")
                done = f" (eval loss {loss:.4f})" if isinstance(loss, (int, float)) else ""
                self._set_status(f"evaluated before step {rec.step + 1}{done}; starting training …{self._params}")
            else:
                self._set_status(f"training{self._params}")
        elif rec.kind is Kind.TRAIN:
            self._trained = True
            every = getattr(cfg, "eval_steps", 0) if cfg is not None and getattr(cfg, "eval_rows", 0) else 0
            if every and rec.step % every == 0 and rec.step < getattr(cfg, "max_steps", 0):
                self._set_status(f"evaluating at step {rec.step} …{self._params}")
            else:
                self._set_status(f"training{self._params}")

    # -- actions -----------------------------------------------------------------------
    def _prepare(self, cfg: TrainConfig | None = None) -> TrainConfig:
        from workbench.runs.store import default_run_dir

        cfg = cfg or self.get_config()
        if not cfg.run_dir:  # named here, so a run that raises can still be resumed from its checkpoints
            cfg = dataclasses.replace(cfg, run_dir=str(default_run_dir(cfg.method, cfg.model)))
        self._cfg, self._run_dir = cfg, cfg.run_dir
        self.result, self.error = None, None
        self._stop = threading.Event()
        self.curves.reset()
        self.samples.reset()
        self.progress.start(cfg.max_steps)
        return cfg

    def start(self) -> None:
        """Start training in a background thread (no-op while a run is going)."""
        if self.running:
            return
        try:
            cfg = self._prepare()
        except WorkbenchError as e:
            self._set_status(f"error: {e}")
            return
        self._launch(cfg, resume=False)

    def resume(self) -> None:
        """Continue the panel's last run from its newest complete checkpoint, with the settings it
        was started with: a stopped run goes on, a completed one trains further when the form's
        max_steps is larger. The curves keep the steps it had already logged."""
        if self.running or not self._resumable():
            return
        from workbench.engine import resume_config
        from workbench.runs import open_run
        from workbench.runs.run import resume_step

        try:
            run_dir = self._run_dir
            cfg = resume_config(run_dir)
            asked = self.get_config().max_steps
            if self.result is not None and self.result.status == "completed" and asked <= cfg.max_steps:
                raise WorkbenchError(f"the run completed its {cfg.max_steps} steps; raise max_steps in the "
                                     "settings to train it further")
            cfg.max_steps = max(cfg.max_steps, asked)
            self._prepare(cfg)
            upto = resume_step(run_dir)
            for rec in open_run(run_dir).records():  # what the resumed run keeps (it truncates after its checkpoint)
                if rec.step <= upto:
                    self.curves.add(rec)
        except WorkbenchError as e:
            self._set_status(f"error: {e}")
            return
        self._launch(cfg, resume=True)

    def _launch(self, cfg: TrainConfig, resume: bool) -> None:
        self.start_button.disabled, self.stop_button.disabled, self.resume_button.disabled = True, False, True
        self._set_status("loading model and data…")
        self._thread = threading.Thread(target=self._train, args=(cfg, resume), name="workbench-train", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask training to end after the current step (it keeps what it did)."""
        if self.running:
            self._stop.set()
            self._set_status("stopping after this step…")

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _train(self, cfg: TrainConfig, resume: bool = False) -> None:
        from workbench import train

        try:
            try:
                self.result = train(cfg, listeners=[self.on_record], stop=self._stop, resume=resume)
            except Exception as e:  # noqa: BLE001 — shown in the panel, the kernel lives on
                self.error = f"{type(e).__name__}: {e}"
                if not isinstance(e, WorkbenchError):
                    traceback.print_exc()
            # The plot holds every point before the status says the run is over (a reader of
            # the status, person or test, then sees the final curve).
            self.curves.redraw()
            if self.error is None:
                steps = self.result.summary.get("steps", self.progress.step)
                why = self.result.summary.get("reason") if self.result.status == "failed" else None
                self._set_status(f"{self.result.status} at step {steps}{f': {why}' if why else ''} — "
                                 f"{self.result.run_dir}")
                self.progress.finish(self.result.status)
            else:
                self._set_status(f"failed: {self.error}")
                self.progress.finish("failed")
        finally:
            self.start_button.disabled, self.stop_button.disabled = False, True
            self.resume_button.disabled = not self._resumable()

    def _resumable(self) -> bool:
        """The last run left a run directory (it completed, stopped, or failed after starting)."""
        return self._run_dir is not None and (Path(self._run_dir) / "config.json").is_file()

    def run_sync(self, show: bool = True):
        """Train in this thread (headless notebooks, scripts); then show static results."""
        if self.running:
            raise WorkbenchError("a run is already going; press Stop or wait for it")
        cfg = self._prepare()
        self._train(cfg)
        if self.error:
            raise WorkbenchError(f"training failed: {self.error}")
        if show:
            self.show_static()
        return self.result

    def show_static(self) -> None:
        show_html(f"<p class='wb-status'>{self.status.value}</p>")
        self.curves.show_static()
        show_html("<b>Samples</b>" + self.samples.html())
