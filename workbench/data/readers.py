"""Read rows from a local file, a `save_to_disk` directory or the Hugging Face hub.

Each reader returns a `Table`: the rows as dicts, the name to use in error messages, and,
where the source already had them, its own train/eval splits.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Split names sources use for held-out data, in order of preference.
EVAL_SPLIT_NAMES = ("eval", "validation", "valid", "test")


@dataclass
class Table:
    name: str                       # for messages: "notes.jsonl", "org/name"
    rows: list[dict]
    splits: dict[str, list[dict]] | None = field(default=None)  # source's own train/eval


def _text(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a UTF-8 BOM is harmless; strip it
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"{path.name} line {line}: not UTF-8 (byte {data[e.start]:#04x} at offset "
                        f"{e.start}); re-save the file as UTF-8") from None
    if not text.strip():
        raise DataError(f"{path.name}: file is empty")
    return text


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path.name} line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path.name} line {n}: expected a JSON object, got {type(obj).__name__}")
        rows.append(obj)
    return rows


def _json(path: Path) -> list[dict]:
    try:
        obj = json.loads(_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path.name} line {e.lineno}: not valid JSON ({e.msg}); "
                        "for one object per line use the .jsonl suffix") from None
    if isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
        lengths = {len(v) for v in obj.values()}
        if len(lengths) != 1:
            raise DataError(f"{path.name}: columns have different lengths {sorted(lengths)}")
        keys = list(obj)
        obj = [dict(zip(keys, vals)) for vals in zip(*obj.values())]
    if not isinstance(obj, list):
        raise DataError(f"{path.name}: expected a list of objects or an object of columns")
    for i, r in enumerate(obj, 1):
        if not isinstance(r, dict):
            raise DataError(f"{path.name} row {i}: expected a JSON object, got {type(r).__name__}")
    if not obj:
        raise DataError(f"{path.name}: no rows")
    return obj


def _csv(path: Path) -> list[dict]:
    import csv
    import io

    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    header = reader.fieldnames or []
    if len(set(header)) != len(header) or any(not h for h in header):
        raise DataError(f"{path.name}: header row has empty or repeated column names: {header}")
    rows = []
    for n, r in enumerate(reader, 1):
        if None in r:  # more cells than header columns
            raise DataError(f"{path.name} row {n}: {len(header) + len(r[None])} cells but the header "
                            f"has {len(header)} columns")
        # A short row leaves its last columns None: that is a missing value, reported later.
        rows.append(r)
    if not rows:
        raise DataError(f"{path.name}: header but no rows")
    return rows


def _parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path.name}: cannot read as parquet ({e})") from None
    if not rows:
        raise DataError(f"{path.name}: no rows")
    return rows


_READERS = {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".parquet": _parquet}


def _from_datasets(name: str, obj) -> Table:
    """A datasets.Dataset or DatasetDict → Table (DatasetDict splits kept)."""
    import datasets

    if isinstance(obj, datasets.DatasetDict):
        train = obj.get("train")
        held = next((obj[s] for s in EVAL_SPLIT_NAMES if s in obj), None)
        if train is None:
            raise DataError(f"{name}: no 'train' split (splits: {', '.join(obj)})")
        splits = {"train": train.to_list()}
        if held is not None:
            splits["eval"] = held.to_list()
        return Table(name, splits["train"] + splits.get("eval", []), splits)
    return Table(name, obj.to_list())


def read_path(path: Path) -> Table:
    if path.is_dir():
        if not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            raise DataError(f"{path}: a directory, but not one written by datasets' save_to_disk")
        import datasets

        return _from_datasets(path.name, datasets.load_from_disk(str(path)))
    if not path.is_file():  # a FIFO would block the read forever; a device never ends
        raise DataError(f"{path}: not a regular file (a pipe, socket or device); name a "
                        f"{', '.join(FILE_SUFFIXES)} file or a save_to_disk directory")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path.name}: unsupported file type {path.suffix!r}; "
                        f"expected one of {', '.join(FILE_SUFFIXES)}")
    return Table(path.name, reader(path))


def is_hub_id(source: str) -> bool:
    # "data/train.jsonl" matches org/name too; a data-file suffix means a (missing) path.
    return (bool(_HUB_ID.match(source)) and not Path(source).exists()
            and not source.lower().endswith(FILE_SUFFIXES))


def read_hub(source: str) -> Table:
    """Load from the Hugging Face hub (needs network). The eval split is the first of
    eval/validation/valid/test the dataset has; without one the caller carves it out."""
    import datasets

    try:
        obj = datasets.load_dataset(source)
    except Exception as e:  # offline, unknown id, gated, ... all surface here
        raise DataError(f"hub dataset {source!r} could not be loaded: {type(e).__name__}: {e}") from None
    return _from_datasets(source, obj)
