"""`load`, `validate` and `preview`: any source → checked, canonical, split rows.

Order of work: read rows → rename mapped columns → detect the source format (the most
common one among rows) → check and normalise every row (problems name file, row, field)
→ pick the split on source rows (so both halves of a converted pair stay together) →
convert to the target format → shuffle with the seed → cut to max_rows.
"""
from __future__ import annotations

import random
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import DataError, DataWarning
from .formats import FORMATS, RowProblem, conversion_path, convert_row, describe_expected, detect, normalise
from .readers import Table, is_hub_id, read_hub, read_path

SPLITS = ("train", "eval")
EVAL_FRACTION = 0.1       # share of a split-less source held out as "eval"
SPLIT_SEED = 0            # fixed, so the eval rows do not change with `seed`
MAX_LISTED = 20           # problems spelled out in one error before "... and N more"


@dataclass
class ValidationReport:
    """What `validate` found. `problems` holds one line per bad row."""
    name: str
    format: str | None
    rows: int
    problems: list[str] = field(default_factory=list)
    bad_rows: list[int] = field(default_factory=list)   # 1-based row numbers in the source

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"{self.name}: {self.rows} rows, format {self.format}, no problems"
        return _problem_text(self.name, self.problems, self.rows)


def _problem_text(name: str, problems: list[str], total: int) -> str:
    head = f"{name}: {len(problems)} bad row{'s' * (len(problems) != 1)} of {total}"
    shown = problems[:MAX_LISTED]
    more = len(problems) - len(shown)
    return "\n".join([head, *shown] + ([f"... and {more} more"] if more else []))


# ---------------------------------------------------------------- reading

def _read(source: Any) -> Table:
    import datasets

    from .catalog import BUILTIN, get_builtin

    if isinstance(source, (datasets.Dataset, datasets.DatasetDict)):
        from .readers import _from_datasets
        return _from_datasets("<dataset>", source)
    if isinstance(source, list):
        return Table("<rows>", [dict(r) for r in source])
    if not isinstance(source, (str, Path)):
        raise DataError(f"dataset source must be a name, path, hub id or datasets.Dataset, "
                        f"not {type(source).__name__}")
    text = str(source)
    if text in BUILTIN:
        return get_builtin(text)
    path = Path(text).expanduser()
    if path.exists():
        return read_path(path)
    if is_hub_id(text):
        return read_hub(text)
    if path.suffix.lower() in (".jsonl", ".json", ".csv", ".parquet") or "/" in text or "\\" in text:
        raise DataError(f"{text}: no such file or directory")
    from ..errors import UnknownNameError
    raise UnknownNameError("dataset", text, list(BUILTIN) + ["<file path>", "<hub org/name>"])


def _map_columns(table: Table, columns: Mapping[str, str] | None) -> None:
    if not columns:
        return
    present = set().union(*(r.keys() for r in table.rows))
    for user, canonical in columns.items():
        if user not in present:
            raise DataError(f"{table.name}: no column {user!r} to map to {canonical!r} "
                            f"(columns: {', '.join(sorted(present))})")
    for rows in [table.rows] + (list(table.splits.values()) if table.splits else []):
        for i, r in enumerate(rows):
            rows[i] = {columns.get(k, k): v for k, v in r.items()}


def _source_format(table: Table) -> str:
    counts = Counter(f for f in map(detect, table.rows) if f)
    if not counts:
        cols = sorted(set().union(*(r.keys() for r in table.rows)))
        raise DataError(f"{table.name}: cannot tell the format from columns {', '.join(cols) or '(none)'}; "
                        f"expected {describe_expected()} (or map yours with columns={{'yours': 'prompt'}})")
    return counts.most_common(1)[0][0]


# ---------------------------------------------------------------- checking

def _check(table: Table, fmt: str, rows: list[dict]) -> tuple[list[tuple[int, dict]], list[str], list[int]]:
    """Normalise `rows` as `fmt`; returns (good (row number, row)), problem lines, bad row numbers."""
    good, problems, bad = [], [], []
    for n, row in enumerate(rows, 1):
        try:
            good.append((n, normalise(row, fmt)))
        except RowProblem as p:
            seen = detect(row)
            if seen and seen != fmt:
                msg = f"looks like {seen!r} (columns {', '.join(sorted(row))}) but the data is {fmt!r}: mixed formats"
            else:
                msg = str(p)
            problems.append(f"{table.name} row {n}: {msg}")
            bad.append(n)
    return good, problems, bad


def validate(source: Any, format: str | None = None, *, columns: Mapping[str, str] | None = None) -> ValidationReport:
    """Check every row of `source` (all splits) without raising on bad rows. With `format`,
    also check that the data can be converted to it."""
    table = _read(source)
    _map_columns(table, columns)
    fmt = _source_format(table)
    if format is not None:
        _target_path(table.name, fmt, format)
    good, problems, bad = _check(table, fmt, table.rows)
    return ValidationReport(table.name, fmt, len(table.rows), problems, bad)


def _target_path(name: str, src: str, dst: str):
    if dst not in FORMATS:
        from ..errors import UnknownNameError
        raise UnknownNameError("data format", dst, FORMATS)
    path = conversion_path(src, dst)
    if path is None:
        reachable = [f for f in FORMATS if conversion_path(src, f) is not None]
        raise DataError(f"{name}: cannot convert {src!r} data to {dst!r}; "
                        f"from {src!r} you can get {', '.join(reachable)}")
    return path


# ---------------------------------------------------------------- splitting

def eval_indices(n: int) -> set[int]:
    """The fixed held-out rows of a source without its own splits: 10% (at least one row
    when there are two or more), picked with a fixed seed so they never change with `seed`."""
    if n < 2:
        return set()
    k = max(1, round(n * EVAL_FRACTION))
    order = list(range(n))
    random.Random(SPLIT_SEED).shuffle(order)
    return set(order[:k])


def _split_rows(table: Table, good: list[tuple[int, dict]], split: str) -> list[tuple[int, dict]]:
    if table.splits:
        n_train = len(table.splits["train"])
        in_eval = lambda n: n > n_train  # noqa: E731  rows are train then eval
    else:
        held = eval_indices(len(table.rows))
        in_eval = lambda n: (n - 1) in held  # noqa: E731
    return [(n, r) for n, r in good if in_eval(n) == (split == "eval")]


# ---------------------------------------------------------------- public

def load(source: Any, *, format: str | None = None, split: str = "train", max_rows: int | None = None,
         seed: int | None = 0, columns: Mapping[str, str] | None = None, on_error: str = "raise"):
    """Load `source` as a `datasets.Dataset` in canonical form.

    source:   built-in name (see `list_datasets()`), a .jsonl/.json/.csv/.parquet file, a
              `save_to_disk` directory, a hub id ("org/name"), or a datasets.Dataset.
    format:   target shape (text, messages, prompt_completion, preference, unpaired, ranked,
              verifiable); None keeps the detected one.
    split:    "train" or "eval". Sources without their own splits hold out a fixed 10%.
    seed:     shuffles the rows (None keeps source order); max_rows then takes the first rows.
    columns:  {"your column": "canonical name"}.
    on_error: "raise" (DataError listing every bad row) or "skip" (drop them, warn with a
              DataWarning that names how many and which).
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if on_error not in ("raise", "skip"):
        raise DataError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise DataError(f"max_rows must be a positive integer, not {max_rows!r}")

    table = _read(source)
    _map_columns(table, columns)
    fmt = _source_format(table)
    path = _target_path(table.name, fmt, format or fmt)
    good, problems, bad = _check(table, fmt, table.rows)
    converted: list[tuple[int, dict]] = []
    for n, row in _split_rows(table, good, split):
        try:
            converted += [(n, r) for r in convert_row(row, path)]
        except RowProblem as p:
            problems.append(f"{table.name} row {n}: {p}")
            bad.append(n)
    if problems:
        text = _problem_text(table.name, problems, len(table.rows))
        if on_error == "raise":
            raise DataError(text + "\n(to drop these rows instead: --on-error skip on the command line, "
                                   "on_error='skip' in Python)")
        warnings.warn(text.replace("bad row", "skipped bad row", 1), DataWarning, stacklevel=2)
    if not converted:
        raise DataError(f"{table.name}: no {split} rows left"
                        + (f" after converting {fmt!r} to {format!r}" if path else ""))

    rows = [r for _, r in converted]
    if seed is not None:
        random.Random(seed).shuffle(rows)
    if max_rows is not None:
        rows = rows[:max_rows]
    return _to_dataset(table.name, rows, format or fmt)


def _to_dataset(name: str, rows: list[dict], fmt: str):
    import datasets

    # The format's own fields first, then extra columns in first-seen order.
    keys = [f for f in FORMATS[fmt] if any(f in r for r in rows)]
    keys += [k for k in dict.fromkeys(k for r in rows for k in r) if k not in keys]
    try:
        return datasets.Dataset.from_list([{k: r.get(k) for k in keys} for r in rows])
    except Exception as e:  # arrow cannot unify an extra column's types across rows
        raise DataError(f"{name}: rows do not share one schema ({type(e).__name__}: {e})") from None


def _cell_text(value: Any) -> Any:
    if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]:
        return "\n".join(f"[{m['role']}] {m['content']}" for m in value)
    if isinstance(value, list) and value and isinstance(value[0], list):
        return [_cell_text(v) for v in value]
    return value


def preview(source: Any, n: int = 5, **kwargs):
    """The first `n` train rows as a pandas DataFrame (conversations shown as text) and the
    format detected in the source. kwargs go to `load` (format, columns, split, ...)."""
    import pandas as pd

    table = _read(source)
    _map_columns(table, kwargs.get("columns"))
    detected = _source_format(table)
    kwargs.setdefault("seed", None)
    ds = load(source, max_rows=n, **kwargs)
    frame = pd.DataFrame([{k: _cell_text(v) for k, v in row.items()} for row in ds])
    return frame, detected
