"""JUnit XML for CI systems: one <testcase> per notebook. A failed notebook carries a
<failure> (the failing cell's error or the output mismatch), a timed-out one an <error
type="Timeout">; every case's <system-out> names the executed notebook and its HTML."""
from __future__ import annotations

import os
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from .runner import CheckResult, NotebookResult


def failure_text(r: NotebookResult) -> str:
    """The failing cell, its source and the error's last lines, as plain text."""
    f = r.failure or {}
    parts = []
    if f.get("cell") is not None:
        parts.append(f"cell {f['cell']}:")
    if f.get("source"):
        parts.append("\n".join("    " + line for line in f["source"].splitlines()))
    if f.get("message"):
        parts.append(f["message"])
    if f.get("lines"):
        parts.append("\n".join(f["lines"]))
    return "\n".join(parts)


def junit_tree(check: CheckResult, suite: str = "workbench check") -> ET.ElementTree:
    counts = check.counts()
    attrs = {"name": suite, "tests": str(len(check.results)), "failures": str(counts["failed"]),
             "errors": str(counts["timed out"]), "skipped": "0", "time": f"{check.seconds:.3f}"}
    root = ET.Element("testsuites", attrs)
    ts = ET.SubElement(root, "testsuite", {**attrs, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                           "hostname": socket.gethostname()})
    for r in check.results:
        folder = str(Path(r.name).parent).replace(os.sep, ".")
        case = ET.SubElement(ts, "testcase", {"classname": "notebooks" if folder == "." else folder,
                                              "name": Path(r.name).name, "file": r.name,
                                              "time": f"{r.seconds:.3f}"})
        f = r.failure or {}
        if r.status == "failed":
            kind = ({"mismatch": "OutputMismatch", "crash": "WorkerCrash"}.get(f.get("kind"))
                    or (f.get("message") or "Error").split(":")[0])
            el = ET.SubElement(case, "failure", {"message": _one_line(f.get("message") or "failed"), "type": kind})
            el.text = failure_text(r)
        elif r.status == "timed out":
            el = ET.SubElement(case, "error", {"message": _one_line(f.get("message") or "timed out"),
                                               "type": "Timeout"})
            el.text = failure_text(r)
        out = [f"profile: {r.profile or '(notebook defaults)'}", f"executed notebook: {r.executed or '-'}",
               f"html: {r.html or '-'}"]
        ET.SubElement(case, "system-out").text = "\n".join(out)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(check: CheckResult, path: str | Path) -> Path:
    """Write the JUnit report atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    junit_tree(check).write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)
    return path


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"
