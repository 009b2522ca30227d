"""One notebook, in its own process: `python -m workbench.checking.worker SPEC.json`.

The runner starts one of these per notebook with the thread-count variables already set
for its share of the cores, so the kernel papermill starts inherits them; a runaway
notebook can be killed with its worker without touching the others. The worker writes
its result as JSON (atomically) to the path named in the spec.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ERROR_LINES = 12  # how many last lines of a traceback the reports keep
INJECTED = "injected-parameters"


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    import nbformat

    from ..notebooks import execute, export_html
    from .compare import compare_notebooks

    start = time.perf_counter()
    notebook, out_dir = Path(spec["notebook"]), Path(spec["out_dir"])
    result: dict[str, Any] = {"status": "failed", "executed": None, "html": None, "failure": None}
    try:
        run = execute(notebook, out_dir, spec.get("parameters") or {}, html=False,
                      total_timeout=spec.get("timeout"), threads=spec.get("threads"))
        result["executed"] = str(run.notebook) if run.notebook.is_file() else None
        result["parameters"] = run.parameters
        if run.timed_out or run.error:
            result["status"] = "timed out" if run.timed_out else "failed"
            result["failure"] = _failure(run, spec.get("timeout"))
        else:
            mismatches = compare_notebooks(nbformat.read(str(notebook), as_version=4),
                                           nbformat.read(str(run.notebook), as_version=4),
                                           spec.get("compare", "lax"), spec.get("patterns") or {})
            if mismatches:
                m = mismatches[0]
                result["failure"] = {
                    "kind": "mismatch", "cell": m.cell, "source": m.source,
                    "message": f"outputs of cell {m.cell} differ from the stored notebook"
                               + (f" (and {len(mismatches) - 1} more cells)" if len(mismatches) > 1 else ""),
                    "lines": m.details[-40:]}
            else:
                result["status"] = "passed"
    except Exception as e:  # the notebook could not be run at all: report, don't crash the check
        result["failure"] = {"kind": "error", "cell": None, "source": "",
                             "message": f"{type(e).__name__}: {e}",
                             "lines": traceback.format_exc().splitlines()[-ERROR_LINES:]}
    if result["executed"]:
        try:
            result["html"] = str(export_html(result["executed"]))
        except Exception as e:  # a report without the export beats no report
            result["html_error"] = f"{type(e).__name__}: {e}"
    result["seconds"] = time.perf_counter() - start
    return result


def _failure(run, timeout) -> dict[str, Any]:
    f = run.failure
    if f is None:
        return {"kind": "timeout" if run.timed_out else "error", "cell": None, "source": "",
                "message": run.error, "lines": []}
    return {"kind": "timeout" if run.timed_out else "error",
            "cell": _code_cell_number(run.notebook), "execution_count": f.execution_count,
            "source": f.source, "message": run.error if run.timed_out else f"{f.ename}: {f.evalue}",
            "lines": f.traceback[-ERROR_LINES:]}


def _code_cell_number(executed: Path):
    """1-based number, among the original notebook's code cells, of the cell where execution
    stopped ("injected parameters" for the cell papermill added)."""
    import nbformat

    from ..notebooks import stopped_cell

    try:
        cells = nbformat.read(str(executed), as_version=4).cells
    except Exception:
        return None
    index = stopped_cell(nbformat.from_dict({"cells": cells}))
    if index is None:
        return None
    if INJECTED in cells[index].get("metadata", {}).get("tags", []):
        return "injected parameters"
    return sum(1 for c in cells[:index + 1] if c.cell_type == "code"
               and INJECTED not in c.get("metadata", {}).get("tags", []))


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    from ..notebooks import skip_iri_grammars

    skip_iri_grammars()
    spec = json.loads(Path(argv[0]).read_text())
    write_json_atomic(Path(spec["result"]), run_spec(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
