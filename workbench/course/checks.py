"""What the check cells of the course notebooks call: run the student's function on a few
cases, compare with the expected answers (the library's own implementation or values
worked out by hand) and say, in words, what is right or wrong.

A check that fails raises `ExerciseFailed` (an AssertionError, so nbgrader and
`workbench course check` count the cell as failed) whose message is written for the
student; a stub that still raises NotImplementedError fails with "not done yet" rather
than a traceback into the library.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class ExerciseFailed(AssertionError):
    """A check cell's verdict: the message says what was expected and what came back."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def _render_traceback_(self):  # IPython shows this instead of a traceback
        return ["✗ " + line if i == 0 else "  " + line for i, line in enumerate(self.message.splitlines())]


@dataclass
class Case:
    """One call of the student's function: its arguments, the expected result, and a label
    saying what the case is about (shown when it fails)."""
    args: tuple
    expected: Any
    label: str = ""
    kwargs: dict = field(default_factory=dict)


def _as_array(x) -> np.ndarray | None:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().double().numpy() if x.dtype.is_floating_point else x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(x, (int, float, np.number, bool, np.bool_)):
        return np.asarray(x)
    if isinstance(x, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(x)
        except ValueError:
            return None
        return arr if arr.dtype != object else None
    return None


def _show(x, limit: int = 160) -> str:
    arr = _as_array(x)
    if arr is not None and arr.dtype.kind == "f":
        text = np.array2string(np.round(arr, 4), separator=", ", threshold=20)
    elif arr is not None:
        text = np.array2string(arr, separator=", ", threshold=20)
    else:
        text = repr(x)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def same(got, expected, *, rtol: float = 1e-4, atol: float = 1e-5) -> tuple[bool, str]:
    """(equal?, why not): numbers and arrays within tolerance, same shape; anything else ==."""
    exp = _as_array(expected)
    if exp is not None:
        g = _as_array(got)
        if g is None:
            return False, f"expected a number/array, got {type(got).__name__}"
        if g.shape != exp.shape:
            return False, f"expected shape {tuple(exp.shape)}, got shape {tuple(g.shape)}"
        if exp.dtype.kind in "fc" or g.dtype.kind in "fc":
            if not np.allclose(g.astype(float), exp.astype(float), rtol=rtol, atol=atol, equal_nan=True):
                return False, "values differ"
            return True, ""
        if not np.array_equal(g, exp):
            return False, "values differ"
        return True, ""
    return (got == expected, "" if got == expected else "values differ")


def check_function(fn: Callable, cases: Iterable[Case], *, name: str | None = None, hint: str = "",
                   rtol: float = 1e-4, atol: float = 1e-5, success: str = "") -> None:
    """Call `fn` on every case; print a ✓ line when all match, else raise ExerciseFailed
    naming the first case that does not (arguments, expected, got) and the hint. Returns
    None: a check cell's last value would count as partial credit in nbgrader."""
    name = name or getattr(fn, "__name__", "your function")
    cases = list(cases)
    for i, case in enumerate(cases, 1):
        label = f" ({case.label})" if case.label else ""
        try:
            got = fn(*case.args, **case.kwargs)
        except NotImplementedError:
            raise ExerciseFailed(f"{name} is not done yet: replace `raise NotImplementedError()` "
                                 f"with your code, run that cell, then run this one again.") from None
        except ExerciseFailed:
            raise
        except Exception as e:  # the student's code crashed: say where, not a library traceback
            raise ExerciseFailed(f"{name} raised {type(e).__name__}: {e}\n"
                                 f"on case {i}{label}: {_args_text(case)}"
                                 + (f"\nHint: {hint}" if hint else "")) from None
        ok, why = same(got, case.expected, rtol=rtol, atol=atol)
        if not ok:
            raise ExerciseFailed(f"{name} gives the wrong answer on case {i} of {len(cases)}{label}: {why}.\n"
                                 f"input:    {_args_text(case)}\n"
                                 f"expected: {_show(case.expected)}\n"
                                 f"got:      {_show(got)}"
                                 + (f"\nHint: {hint}" if hint else ""))
    print(f"✓ {name}: all {len(cases)} cases match." + (f" {success}" if success else ""))


def check_value(got, expected, *, what: str, hint: str = "", rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Check one value the student computed (not a function)."""
    if got is None or got is Ellipsis:
        raise ExerciseFailed(f"{what}: not done yet (still {got!r}).")
    ok, why = same(got, expected, rtol=rtol, atol=atol)
    if not ok:
        raise ExerciseFailed(f"{what} is not right: {why}.\nexpected: {_show(expected)}\ngot:      {_show(got)}"
                             + (f"\nHint: {hint}" if hint else ""))
    print(f"✓ {what}: {_show(got)}")


def _args_text(case: Case) -> str:
    parts = [_show(a, 80) for a in case.args] + [f"{k}={_show(v, 80)}" for k, v in case.kwargs.items()]
    return ", ".join(parts)


def cases_from(fn: Callable, inputs: Sequence[tuple], labels: Sequence[str] | None = None) -> list[Case]:
    """Cases whose expected results come from `fn` (the library's implementation)."""
    labels = list(labels or [""] * len(inputs))
    return [Case(tuple(args), fn(*args), label) for args, label in zip(inputs, labels)]


def isclose(a: float, b: float, tol: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
