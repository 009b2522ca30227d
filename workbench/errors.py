"""User-facing errors: one line that names what is wrong and where."""
import difflib


class WorkbenchError(ValueError):
    """A problem with the user's input. The CLI prints it as one line and exits 2."""


class UnknownNameError(WorkbenchError):
    """An unknown model, method, dataset, PEFT type or config key."""

    def __init__(self, kind: str, name: str, known, hint: str | None = None):
        known = sorted(known)
        hint = f" ({hint})" if hint else did_you_mean(name, known)
        super().__init__(f"unknown {kind} {name!r}{hint}; known: {', '.join(known) or '(none)'}")


def did_you_mean(name, known) -> str:
    """" (did you mean 'x'?)" for the closest known name, or "" when none is close."""
    return f" (did you mean {m!r}?)" if (m := close_match(name, known)) else ""


def close_match(name, known) -> str | None:
    """The known name a typo most likely meant: equal up to case and '-'/'_' (`best-of-n` for
    `best_of_n`), the one name it begins (`smollm2-135m` for `smollm2-135m-instruct`), else
    difflib's closest above a strict cutoff; None when nothing is close."""
    def norm(s) -> str:
        return str(s).lower().replace("-", "_")
    known = [str(k) for k in known]
    same = [k for k in known if norm(k) == norm(name)]
    if same:
        return same[0]
    begun = [k for k in known if len(norm(name)) >= 4 and norm(k).startswith(norm(name))]
    if len(begun) == 1:
        return begun[0]
    close = difflib.get_close_matches(norm(name), [norm(k) for k in known], n=1, cutoff=0.75)
    return next(k for k in known if norm(k) == close[0]) if close else None
