"""`--set KEY=VALUE` pairs, read one way by every command: the value is YAML (`1e-3` a number,
`[8, 16]` a list) or the text itself; a key naming one of the command's own flags is that flag."""
from __future__ import annotations

from ..errors import WorkbenchError


def parse_sets(pairs: list[str], prefix: str = "", base: dict | None = None) -> dict:
    """{key: value} from `--set` pairs (later pairs win over `base` and earlier ones); `prefix`
    (`strategy.`, `merge.`) may lead a key."""
    from ..config import load_value

    knobs = dict(base or {})
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().removeprefix(prefix)
        if not sep or not key:
            raise WorkbenchError(f"--set {pair!r}: expected KEY=VALUE")
        knobs[key] = load_value(raw) if raw.strip() else ""
    return knobs


def sets_into_flags(knobs: dict, args, flags: tuple[str, ...]) -> None:
    """`--set density=0.3` for merge's --density, `--set seed=1` for select's --seed: the flag's
    value (it was a TypeError, 'got multiple values for keyword argument'); both given is refused.
    The flags default to None, so that "given" can be told apart."""
    for flag in flags:
        if flag in knobs:
            if getattr(args, flag) is not None:
                raise WorkbenchError(f"--set {flag}=… and --{flag} both given; give --{flag} once")
            setattr(args, flag, knobs.pop(flag))
