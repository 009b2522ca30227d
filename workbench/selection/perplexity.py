"""Model-scored difficulty: `perplexity` and `ifd` (Superfiltering).

- perplexity: the response's mean token loss given its instruction.
- ifd: Instruction-Following Difficulty, as the reference code computes it (Cherry LLM /
  Superfiltering, `ifd_ppl = ppl_A_condition / ppl_A_direct`): the ratio of *perplexities*
  PPL(response | instruction) / PPL(response), PPL = exp(mean token NLL), i.e.
  exp(loss(r|i) − loss(r)). Near 1 the instruction barely helps predict the response
  (hard, informative rows); far below 1 the response follows from the instruction.
  Superfiltering (Li et al. 2024) shows a small model's IFD ranks data almost as well as a
  large one's. Rows with IFD ≥ 1 (the instruction does not help at all, often misaligned
  pairs) are *dropped*, as the reference's `select_data.py` does, so the selection can be
  shorter than k. Kept as named options: `score=loss_ratio` (loss(r|i)/loss(r), the
  workbench's earlier reading, which orders rows differently) and
  `above_max=rank_last` (rows at/above `max_ifd` ranked after all others, k always met).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..errors import WorkbenchError
from .base import strategy, top_k

_HELP = {
    "scorer": "model that scores (built-in name, hub id or local dir); small is fine (Superfiltering)",
    "batch_size": "rows per forward pass (rows are sorted by length first)",
    "max_length": "truncate prompt+response to this many tokens",
    "progress": "show a progress bar",
}


# Losses of recent (scorer, pool) pairs, in memory only: a notebook that selects and then
# trains with the same `selection` block scores the pool once, not twice.
_LOSSES: OrderedDict = OrderedDict()


def _losses(pool, knobs, with_instruction: bool, desc: str) -> np.ndarray:
    from .scoring import load_scorer, response_losses  # late: imports torch

    digest = hashlib.sha1()
    for i, r in zip(pool.instructions, pool.responses):
        digest.update(f"{i if with_instruction else ''}\x00{r}\x01".encode())
    key = (knobs.scorer, knobs.max_length, with_instruction, digest.hexdigest())
    if key not in _LOSSES:
        model, tok = load_scorer(knobs.scorer)
        ins = pool.instructions if with_instruction else [None] * len(pool)
        _LOSSES[key] = response_losses(model, tok, ins, pool.responses, batch_size=knobs.batch_size,
                                       max_length=knobs.max_length, progress=knobs.progress, desc=desc)
        while len(_LOSSES) > 8:
            _LOSSES.popitem(last=False)
    return _LOSSES[key].copy()


@dataclass
class PerplexityKnobs:
    scorer: str = field(default="smollm2-135m-instruct", metadata={"help": _HELP["scorer"]})
    order: str = field(default="high", metadata={
        "help": "high = hardest rows first; low = most fluent/typical rows first (a quality filter)"})
    batch_size: int = field(default=8, metadata={"min": 1, "help": _HELP["batch_size"]})
    max_length: int = field(default=512, metadata={"min": 2, "help": _HELP["max_length"]})
    progress: bool = field(default=True, metadata={"help": _HELP["progress"]})


@dataclass
class IfdKnobs:
    scorer: str = field(default="smollm2-135m-instruct", metadata={"help": _HELP["scorer"]})
    max_ifd: float = field(default=1.0, metadata={
        "help": "rows with IFD at or above this are dropped (the reference drops IFD ≥ 1)"})
    score: str = field(default="ppl_ratio", metadata={
        "help": "ppl_ratio = PPL(r|i)/PPL(r) (reference); loss_ratio = loss(r|i)/loss(r) (earlier reading)"})
    above_max: str = field(default="drop", metadata={
        "help": "drop = exclude rows at/above max_ifd, selection may be shorter than k (reference); "
                "rank_last = rank them after all others, always k rows"})
    batch_size: int = field(default=8, metadata={"min": 1, "help": _HELP["batch_size"]})
    max_length: int = field(default=512, metadata={"min": 2, "help": _HELP["max_length"]})
    progress: bool = field(default=True, metadata={"help": _HELP["progress"]})


@strategy("perplexity", PerplexityKnobs, "response loss given the instruction, scored by a small model")
def select_perplexity(pool, k, rng, knobs):
    if knobs.order not in ("high", "low"):
        raise WorkbenchError(f"selection.perplexity.order: expected high or low, got {knobs.order!r}")
    loss = _losses(pool, knobs, True, "perplexity")
    scores = loss if knobs.order == "high" else -loss
    return top_k(scores, k), scores, {"score": f"response loss ({knobs.order} first)", "loss": loss}


def ifd_scores(pool, knobs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(IFD, loss with instruction, loss without): IFD per `knobs.score` (ppl_ratio by default)."""
    with_inst = _losses(pool, knobs, True, "ifd: with instruction")
    without = _losses(pool, knobs, False, "ifd: without instruction")
    score = getattr(knobs, "score", "ppl_ratio")
    if score == "ppl_ratio":
        ifd = np.exp(with_inst - without)  # = PPL(r|i) / PPL(r), the reference's ratio, without overflow
    elif score == "loss_ratio":
        ifd = with_inst / without
    else:
        raise WorkbenchError(f"selection.ifd.score: expected ppl_ratio or loss_ratio, got {score!r}")
    return ifd, with_inst, without


_IFD_LABEL = {"ppl_ratio": "IFD = PPL(response|instruction) / PPL(response)",
              "loss_ratio": "IFD (loss_ratio) = loss(response|instruction) / loss(response)"}


@strategy("ifd", IfdKnobs, "instruction-following difficulty PPL(r|i)/PPL(r); IFD ≥ 1 dropped (Superfiltering)")
def select_ifd(pool, k, rng, knobs):
    if knobs.score not in _IFD_LABEL:  # checked before the (costly) scoring
        raise WorkbenchError(f"selection.ifd.score: expected ppl_ratio or loss_ratio, got {knobs.score!r}")
    if knobs.above_max not in ("drop", "rank_last"):
        raise WorkbenchError(f"selection.ifd.above_max: expected drop or rank_last, got {knobs.above_max!r}")
    if not any(pool.instructions):  # raw text: both losses are the same, every IFD 1 (minutes of scoring to learn it)
        raise WorkbenchError("selection.ifd: no row has an instruction (raw text), so every IFD would be 1; IFD "
                             "ranks instruction/response pairs: for text use perplexity, dsir or zipfit")
    ifd, with_inst, without = ifd_scores(pool, knobs)
    ok = np.isfinite(ifd) & (ifd < knobs.max_ifd)  # NaN (no response tokens) never passes
    eligible = np.where(ok, ifd, -np.inf)
    order = top_k(eligible, k)
    if knobs.above_max == "drop":
        order = order[ok[order]]
        if len(order) == 0:
            raise WorkbenchError(f"selection.ifd: no row has IFD < max_ifd={knobs.max_ifd} (rows without an "
                                 "instruction all score 1); raise max_ifd or set above_max=rank_last")
    diag = {"score": _IFD_LABEL[knobs.score], "loss_with_instruction": with_inst,
            "loss_without_instruction": without, "above_max_ifd": int(np.sum(~ok)),
            "above_max": knobs.above_max}
    if len(order) < k:
        diag["short_of_k"] = int(k - len(order))
    return order, ifd, diag
