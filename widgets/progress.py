"""Progress bar with ETA, and throughput / memory readouts."""
from __future__ import annotations

import time

import ipywidgets as W
from tqdm import tqdm

from workbench.runs.records import Event, Kind, MetricsRecord


def memory_text() -> str:
    import psutil  # ships with ipykernel

    parts = [f"RSS {psutil.Process().memory_info().rss / 2**30:.2f} GiB"]
    try:
        import torch

        if torch.cuda.is_available():
            parts.append(f"GPU peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    except ImportError:
        pass
    return " · ".join(parts)


class Progress:
    def __init__(self):
        self.bar = W.IntProgress(value=0, min=0, max=1, description="step", bar_style="info",
                                 layout=W.Layout(width="50%"))
        self.bar.add_class("wb-progress")
        self.label = W.HTML("")
        self.label.add_class("wb-progress-text")
        self.readout = W.HTML("")
        self.readout.add_class("wb-readout")
        self.widget = W.VBox([W.HBox([self.bar, self.label]), self.readout])
        self._t0 = None
        self._step0 = 0
        self.step = 0
        self.max_steps = 0

    def start(self, max_steps: int) -> None:
        self.max_steps = max(1, int(max_steps))
        self.bar.max, self.bar.value, self.bar.bar_style = self.max_steps, 0, "info"
        self._t0, self._step0, self.step = time.monotonic(), 0, 0
        self.label.value = f"0/{self.max_steps}"

    def note(self, text: str) -> None:
        """A phase without steps yet (e.g. the evaluation before step 1) beside the count."""
        self.label.value = f"{self.step}/{self.max_steps} · {text}"

    def add(self, rec: MetricsRecord) -> None:
        if rec.event == Event.START:
            self.start(rec.values.get("max_steps") or self.max_steps)
            self._step0 = rec.step  # resumed runs start past 0
            return
        if rec.kind is not Kind.TRAIN:
            return
        self.step = rec.step
        self.bar.value = min(rec.step, self.bar.max)
        self.label.value = self.text()
        tps = rec.values.get("tokens_per_s")
        parts = [f"{tps:,.0f} tokens/s" if isinstance(tps, (int, float)) else None, memory_text()]
        self.readout.value = " · ".join(p for p in parts if p)

    def text(self) -> str:
        if self._t0 is None:
            return ""
        elapsed = time.monotonic() - self._t0
        done = self.step - self._step0
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        eta = tqdm.format_interval((self.max_steps - self.step) / rate) if rate else "?"
        return (f"{self.step}/{self.max_steps} · {rate:.2f} steps/s · "
                f"elapsed {tqdm.format_interval(elapsed)} · ETA {eta}")

    def finish(self, status: str) -> None:
        self.bar.bar_style = {"completed": "success", "stopped": "warning"}.get(status, "danger")
