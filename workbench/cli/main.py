"""`workbench` command line. Each sub-command lives in its own module of this package,
with `add_parser(subparsers)` and `run(args) -> int`."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings

from ..errors import WorkbenchError
from ..notebooks import skip_iri_grammars

# Module names in workbench.cli, in the order `--help` lists them.
COMMANDS = ("models", "datasets", "train", "select", "shift", "eval", "generate", "chat", "merge", "export",
            "runs", "run", "sweep", "check", "course")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description="LM Workbench: adapt, watch and probe language models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.{name}":  # command not built yet
                continue
            raise
        mod.add_parser(sub)
    return parser


@contextlib.contextmanager
def _own_warnings_as_lines(command: str):
    """The workbench's own warnings (rows dropped by max_length, bad rows skipped) as one line
    each, as its errors are, instead of Python's file:line header plus the source line."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.split(".")[0] != "workbench":
            return shown(message, category, filename, lineno, file, line)
        print(f"workbench {command}: warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def main(argv=None) -> int:
    skip_iri_grammars()  # before any command imports nbformat (see there)
    args = build_parser().parse_args(argv)
    try:
        with _own_warnings_as_lines(args.command):
            return int(args.func(args) or 0)
    except WorkbenchError as e:
        print(f"workbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (`workbench runs | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141  # what a shell reports for a process ended by SIGPIPE
    except OSError as e:  # a file-system failure the command did not foresee: one line, no traceback
        from ._paths import os_error_text

        print(f"workbench {args.command}: error: {os_error_text(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a full disk met inside a library's writer (safetensors, torch.save): one line
        from ._paths import disk_full

        if not disk_full(e):
            raise
        print(f"workbench {args.command}: error: no space left on device ({type(e).__name__}: "
              f"{str(e).splitlines()[0][:300]}); free some space and run it again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
