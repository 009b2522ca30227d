"""Orchestration that is not a trainer (torchtune's recipe interface, in small): a
coordinator drives several trainers over one Run — e.g. the on-policy loop builds one TRL
trainer per round and attaches each to the run with a step offset. The engine calls
`setup(run)`, `train()`, `save_model(dir)` and `close()`, in that order."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runs.run import Run


class Coordinator(ABC):
    model: object  # the policy being trained (what the final save writes)

    @abstractmethod
    def setup(self, run: "Run") -> None:
        """Bind to the run; restore from `run.checkpoint` when resuming."""

    @abstractmethod
    def train(self) -> int:
        """Run to the end (or to a stop request); return the run's global step."""

    @abstractmethod
    def save_model(self, output_dir: str) -> None:
        """Write the trained weights (adapter or full) and tokenizer to output_dir."""

    def close(self) -> None:
        """Release what setup took (default: nothing)."""
