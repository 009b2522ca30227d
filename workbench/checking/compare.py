"""Compare an executed notebook's outputs with the outputs stored in the original, the
nbval way, with nbval's own code: its cell markers (`# NBVAL_CHECK_OUTPUT`,
`# NBVAL_IGNORE_OUTPUT`, `# NBVAL_SKIP`, or the same as cell tags `nbval-check-output` …),
its stream coalescing, its sanitizing regexes and its `compare_outputs`.

Modes: "lax" (nbval's --nbval-lax: only cells marked to check), "strict" (nbval's --nbval:
every code cell unless marked to ignore or skip), "off". Cells the stored notebook never
ran are not compared (as in nbval).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from ..errors import WorkbenchError

MODES = ("off", "lax", "strict")
# nbval's defaults (IPyNbFile.skip_compare, without --nbdime).
SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")
INJECTED_TAG = "injected-parameters"


@dataclass
class Mismatch:
    cell: int            # 1-based number among the notebook's code cells
    source: str
    details: list[str]   # nbval's comparison report lines


def sanitize_patterns(path: str | Path | None) -> dict[str, str]:
    """Regex → replacement pairs from an nbval sanitize file (`regex: …` / `replace: …` lines)."""
    if path is None:
        return {}
    import re

    from nbval.plugin import get_sanitize_patterns

    try:
        patterns = dict(get_sanitize_patterns(Path(path).read_text(encoding="utf-8")))
    except UnicodeDecodeError as e:
        raise WorkbenchError(f"sanitize file {path}: not a text file ({e.reason} at byte {e.start})") from None
    if not patterns:  # a wrong file (or a typo in 'regex:') would otherwise sanitize nothing, silently
        raise WorkbenchError(f"sanitize file {path} holds no 'regex: …' / 'replace: …' pairs (nbval's format)")
    for regex in patterns:
        try:
            re.compile(regex)
        except re.error as e:
            raise WorkbenchError(f"sanitize file {path}: regex {regex!r} does not compile ({e})") from None
    return patterns


def compare_notebooks(reference, executed, mode: str = "lax",
                      patterns: dict[str, str] | None = None) -> list[Mismatch]:
    """Mismatches between `reference` (the notebook as stored) and `executed` (papermill's
    output, whose injected-parameters cell is ignored), both nbformat v4 nodes."""
    if mode not in MODES:
        raise ValueError(f"unknown comparison mode {mode!r}; known: {', '.join(MODES)}")
    if mode == "off":
        return []
    ref_cells = [c for c in reference.cells if c.cell_type == "code"]
    run_cells = [c for c in executed.cells
                 if c.cell_type == "code" and INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    comparer = _Comparer(patterns or {})
    out = []
    for number, (ref, run) in enumerate(zip(ref_cells, run_cells), start=1):
        options = _options(ref, check_default=mode == "strict")
        if options.get("skip") or not options.get("check") or ref.get("execution_count") is None:
            continue
        ok, details = comparer.compare(copy.deepcopy(run.get("outputs", [])),
                                       copy.deepcopy(ref.get("outputs", [])))
        if not ok:
            out.append(Mismatch(number, ref.source, details))
    return out


def _options(cell, check_default: bool) -> dict:
    """nbval's per-cell options: tags first, then comment markers (which win)."""
    try:
        from nbval.plugin import find_comment_markers, find_metadata_tags
    except ImportError:  # pragma: no cover - nbval is a dependency; keep its markers working without it
        return _fallback_options(cell, check_default)
    options = dict(find_metadata_tags(cell.get("metadata", {})))
    options.update(dict(find_comment_markers(cell.source)))
    options.setdefault("check", check_default)
    return options


def _fallback_options(cell, check_default: bool) -> dict:
    markers = {"NBVAL_IGNORE_OUTPUT": ("check", False), "NBVAL_CHECK_OUTPUT": ("check", True),
               "NBVAL_SKIP": ("skip", True), "NBVAL_RAISES_EXCEPTION": ("check_exception", True)}
    options = {}
    for tag in cell.get("metadata", {}).get("tags", []):
        key = tag.upper().replace("-", "_")
        if key in markers:
            options[markers[key][0]] = markers[key][1]
    for line in cell.source.splitlines():
        comment = line.strip().lstrip("#").strip() if line.strip().startswith("#") else ""
        if comment in markers:
            options[markers[comment][0]] = markers[comment][1]
    options.setdefault("check", check_default)
    return options


class _Comparer:
    """Runs nbval's `IPyNbCell.compare_outputs` outside pytest: that method needs only the
    attributes given here (the skip list and sanitize patterns of its parent, colours, and
    pytest's assert-repr hook, for which it has a plain fallback)."""

    def __init__(self, patterns: dict[str, str]):
        try:
            from nbval.plugin import IPyNbCell, coalesce_streams, nocolors
        except ImportError:  # pragma: no cover
            self._cell = None
            return
        self._coalesce = coalesce_streams

        class _Parent:
            skip_compare = SKIP_COMPARE
            sanitize_patterns = patterns

        class _NoHook:
            @staticmethod
            def pytest_assertrepr_compare(**kwargs):
                return []

        class _Cell:
            parent = _Parent()
            colors = nocolors
            config = None  # only handed to the assert-repr hook below
            ihook = _NoHook()
            compare_outputs = IPyNbCell.compare_outputs
            format_output_compare = IPyNbCell.format_output_compare
            sanitize = IPyNbCell.sanitize

        self._cell = _Cell()

    def compare(self, test: list, ref: list) -> tuple[bool, list[str]]:
        if self._cell is None:  # pragma: no cover
            return _plain_compare(test, ref)
        self._cell.comparison_traceback = []
        ok = self._cell.compare_outputs(self._coalesce(test), self._coalesce(ref))
        return bool(ok), [line for chunk in self._cell.comparison_traceback for line in str(chunk).splitlines()]


def _plain_compare(test: list, ref: list) -> tuple[bool, list[str]]:  # pragma: no cover
    def key(outputs):
        return [{k: v for k, v in o.items() if k not in SKIP_COMPARE} for o in outputs]

    ok = key(test) == key(ref)
    return ok, [] if ok else ["outputs differ"]
