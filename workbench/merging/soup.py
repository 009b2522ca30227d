"""Greedy soup (Wortsman et al. 2022): sort the runs by their own held-out score, start
the soup with the best, and add each next run only if the uniform soup with it scores no
worse. The averaging is the linear method's (PEFT primitives); this is the selection."""
from __future__ import annotations

from typing import Callable


def greedy_select(alone: list[float], soup_score: Callable[[list[int]], float]) -> tuple[list[int], list[dict]]:
    """(kept indices, one log row per candidate). Lower scores are better; `alone[i]` is run
    i's own score and `soup_score(indices)` scores the uniform soup of those runs. Ties
    keep the candidate (the recipe adds a run unless the held-out metric gets worse)."""
    order = sorted(range(len(alone)), key=lambda i: alone[i])
    kept, best = [order[0]], alone[order[0]]
    log = [{"candidate": order[0], "alone": alone[order[0]], "soup": best, "kept": True}]
    for i in order[1:]:
        score = soup_score(kept + [i])
        keep = score <= best
        log.append({"candidate": i, "alone": alone[i], "soup": score, "kept": keep})
        if keep:
            kept, best = kept + [i], score
    return kept, log
