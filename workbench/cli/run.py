"""`workbench run NOTEBOOK -p key value …`: execute a notebook headless (papermill) into a
run folder and export it to HTML."""
from __future__ import annotations

import time
from pathlib import Path

import yaml

from ..config import load_yaml
from ..errors import WorkbenchError
from ._paths import check_output_dir


def add_parser(sub):
    p = sub.add_parser("run", help="execute a notebook with parameters (papermill) and export HTML")
    p.add_argument("notebook", help="path to a .ipynb with a cell tagged 'parameters'")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="set a parameter (VALUE is parsed as YAML: 20, 1e-3, true, [a, b])")
    p.add_argument("-o", "--output", help="run folder (default: runs/notebooks/<name>-<time>)")
    p.add_argument("--no-html", action="store_true", help="skip the HTML export")
    p.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell")
    p.add_argument("--list-parameters", action="store_true", help="print the notebook's parameters and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..notebooks import execute, notebook_parameters

    if args.list_parameters:
        for name, default in notebook_parameters(args.notebook).items():
            print(f"{name} = {default}")
        return 0
    params = {}
    for key, raw in args.parameter:
        try:
            params[key] = load_yaml(raw)
        except yaml.YAMLError:
            raise WorkbenchError(f"-p {key} {raw!r}: not a valid value") from None
    if args.timeout is not None and args.timeout < 1:
        raise WorkbenchError(f"--timeout must be at least 1 second, got {args.timeout}")
    out = Path(args.output) if args.output else (
        Path("runs") / "notebooks" / f"{Path(args.notebook).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_output_dir(out, "-o/--output")
    result = execute(args.notebook, out, params, html=not args.no_html, timeout=args.timeout)
    print(f"executed notebook: {result.notebook}")
    if result.error:
        print(f"failed: {result.error}")
        return 1
    print(f"took {result.seconds:.1f} s")
    if result.html:
        print(f"html: {result.html}")  # last line: `make demo` ends on it
    return 0
