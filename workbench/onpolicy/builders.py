"""Turn scored groups (one prompt, k samples, k rewards) into training rows for a
preference objective. Every builder drops prompts whose samples all tie — they carry no
preference signal.

- best_vs_worst → `preference`: one pair per prompt, highest vs lowest reward.
- all_pairs     → `preference`: every (better, worse) pair with a strictly higher reward
                  (with a 0/1 checker: all correct × incorrect).
- ranked        → `ranked`: the prompt's distinct samples with their rewards (LiPO, AFT).
- unpaired      → `unpaired`: each sample labelled by whether it beats `threshold`
                  (default: its group's mean reward) (KTO, BCO).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..errors import UnknownNameError, WorkbenchError
from .sampler import Group


def _msg(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _distinct(group: Group) -> list[tuple[str, float]]:
    """(completion, reward), each text once (duplicates keep their first reward)."""
    seen: dict[str, float] = {}
    for text, r in zip(group.completions, group.rewards):
        seen.setdefault(text, r)
    return list(seen.items())


def _untied(groups: Iterable[Group]) -> list[Group]:
    return [g for g in groups if len(set(g.rewards)) > 1]


def best_vs_worst(groups: Iterable[Group]) -> list[dict]:
    rows = []
    for g in _untied(groups):
        items = sorted(_distinct(g), key=lambda x: x[1])
        (worst, r_lo), (best, r_hi) = items[0], items[-1]
        rows.append({"prompt": g.prompt, "chosen": _msg(best), "rejected": _msg(worst),
                     "reward_chosen": r_hi, "reward_rejected": r_lo})
    return rows


def all_pairs(groups: Iterable[Group], max_pairs_per_prompt: int | None = None) -> list[dict]:
    rows = []
    for g in _untied(groups):
        items = sorted(_distinct(g), key=lambda x: -x[1])
        pairs = [(a, b) for i, a in enumerate(items) for b in items[i + 1:] if a[1] > b[1]]
        for (best, r_hi), (worst, r_lo) in pairs[:max_pairs_per_prompt]:
            rows.append({"prompt": g.prompt, "chosen": _msg(best), "rejected": _msg(worst),
                         "reward_chosen": r_hi, "reward_rejected": r_lo})
    return rows


def ranked(groups: Iterable[Group]) -> list[dict]:
    rows = []
    for g in _untied(groups):
        items = sorted(_distinct(g), key=lambda x: -x[1])
        rows.append({"prompt": g.prompt, "responses": [_msg(t) for t, _ in items],
                     "scores": [float(r) for _, r in items]})
    return rows


def unpaired(groups: Iterable[Group], threshold: float | None = None) -> list[dict]:
    rows = []
    for g in _untied(groups):
        cut = threshold if threshold is not None else sum(g.rewards) / len(g.rewards)
        for text, r in _distinct(g):
            rows.append({"prompt": g.prompt, "completion": _msg(text), "label": bool(r > cut), "reward": float(r)})
    return rows


@dataclass(frozen=True)
class Builder:
    name: str
    data_format: str
    build: Callable[..., list[dict]]


BUILDERS: dict[str, Builder] = {}
for _b in (
    Builder("best_vs_worst", "preference", best_vs_worst),
    Builder("all_pairs", "preference", all_pairs),
    Builder("ranked", "ranked", ranked),
    Builder("unpaired", "unpaired", unpaired),
):
    if BUILDERS.setdefault(_b.name, _b) is not _b:  # a name taken twice is refused
        raise WorkbenchError(f"pair builder {_b.name!r} is registered twice")
DEFAULT_FOR_FORMAT = {"preference": "best_vs_worst", "ranked": "ranked", "unpaired": "unpaired"}


def get_builder(name: str) -> Builder:
    if name not in BUILDERS:
        raise UnknownNameError("pair builder", name, BUILDERS)
    return BUILDERS[name]
