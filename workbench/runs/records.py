"""The one metrics record: it feeds the run store, the live plots, the CLI and the
reports. Record kinds and event names are named constants (str enums, so a record read
back from JSON compares equal to them)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable


class Kind(str, Enum):
    TRAIN = "train"     # a training log (loss, learning rate, rewards/*, tokens/s …)
    EVAL = "eval"       # an evaluation (eval_loss, probes, task accuracy …)
    SAMPLE = "sample"   # a generation at an eval point (goes to samples.jsonl)
    EVENT = "event"     # a lifecycle event; values["event"] is an Event

    def __str__(self) -> str:
        return self.value


class Event(str, Enum):
    START = "start"     # training (re)starts: max_steps, trainable share, resumed_from
    END = "end"         # training ended (any reason)
    ROUND = "round"     # an on-policy round: rewards, pairs built, sample accuracy

    def __str__(self) -> str:
        return self.value


KINDS = tuple(k.value for k in Kind)


@dataclass
class MetricsRecord:
    step: int
    kind: str = Kind.TRAIN
    values: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def __post_init__(self):
        self.kind = Kind(self.kind)  # refuses an unknown kind

    def to_json(self) -> dict[str, Any]:
        """Flat JSON object: {"step", "kind", "time", **values}. NaN/inf become null so
        every line stays valid JSON."""
        out: dict[str, Any] = {"step": self.step, "kind": self.kind.value, "time": round(self.time, 3)}
        for k, v in self.values.items():
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            elif isinstance(v, Enum):
                v = v.value
            out[k] = v
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "MetricsRecord":
        obj = dict(obj)
        return cls(step=int(obj.pop("step")), kind=obj.pop("kind", Kind.TRAIN),
                   time=float(obj.pop("time", 0.0)), values=obj)

    def get(self, key: str, default=None):
        return self.values.get(key, default)

    @property
    def event(self) -> str | None:
        """The event name of an EVENT record, else None."""
        return self.values.get("event") if self.kind is Kind.EVENT else None


Listener = Callable[[MetricsRecord], None]
