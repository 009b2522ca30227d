"""The library's layers, checked on the source: a lower layer never imports a higher one
(not even lazily, inside a function), and methods/ and data/ have no import cycles."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "workbench"

# package -> packages it must never import. Lowest first: runs ← training ← onpolicy ← methods ← engine/cli.
FORBIDDEN = {
    "runs": {"training", "methods", "onpolicy", "engine", "cli", "analysis", "selection", "sweeps", "reports",
             "notebooks"},
    "training": {"methods", "onpolicy", "engine", "cli", "analysis", "sweeps", "reports", "notebooks"},
    "onpolicy": {"methods", "engine", "cli", "sweeps", "notebooks"},
    "methods": {"engine", "cli", "sweeps", "notebooks"},
    "data": {"runs", "training", "methods", "onpolicy", "engine", "cli"},
    "models": {"runs", "training", "methods", "onpolicy", "engine", "cli", "data"},
    # the packages on top of a run: they read models and runs, never the engine or the CLI
    "decoding": {"training", "engine", "cli", "sweeps", "notebooks", "merging", "evaluation", "checking"},
    "evaluation": {"training", "engine", "cli", "sweeps", "notebooks", "merging", "checking"},
    "merging": {"training", "engine", "cli", "sweeps", "notebooks", "evaluation", "checking"},
    "checking": {"runs", "training", "methods", "onpolicy", "engine", "cli", "analysis", "decoding", "merging"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Absolute names of the workbench modules `path` imports."""
    tree = ast.parse(path.read_text())
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    nodes = tree.body if top_level_only else ast.walk(tree)
    out = set()
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:  # `if TYPE_CHECKING:` imports don't run
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] in ("workbench", "widgets")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] not in ("workbench", "widgets"):
                continue
            if node.module:  # `from .x import y` imports x; `from . import x` imports only x
                out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def _type_checking_only(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom):
                    names |= {f"{sub.module}.{a.name}" for a in sub.names}
    return names


FILES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_from_a_higher_layer(path):
    layer = _module_name(path).split(".")[1] if "." in _module_name(path) else None
    forbidden = FORBIDDEN.get(layer, set())
    skip = {n.split(".")[-1] for n in _type_checking_only(path)}
    bad = []
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "widgets":
            bad.append(name)  # the core library never imports the interactive layer
        elif len(parts) > 1 and parts[1] in forbidden and parts[-1] not in skip:
            bad.append(name)
    assert not bad, f"{path.relative_to(ROOT)} ({layer}) imports a higher layer: {sorted(bad)}"


@pytest.mark.parametrize("package", ["methods", "data"])
def test_no_import_cycles(package):
    files = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph = {m: {n for n in _imports(p, top_level_only=True) if n in files and n != m} for m, p in files.items()}
    seen, stack = set(), []

    def visit(m):
        if m in stack:
            raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(m):] + [m])}")
        if m in seen:
            return
        stack.append(m)
        for n in graph[m]:
            visit(n)
        stack.pop()
        seen.add(m)

    for m in graph:
        visit(m)


def test_the_command_line_parser_loads_no_heavy_library():
    """`workbench --help`, `check`, `runs`, `course`… parse their arguments without torch,
    transformers or pandas (~2 s of imports each start, measured): a command imports them in
    its run()."""
    import subprocess
    import sys

    code = ("import sys; from workbench.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'lm_eval') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
