"""`workbench check PATH…`: execute notebooks headless (papermill) with their CI profile, in
parallel workers that share the cores, compare marked outputs the nbval way, and report
per notebook (console, JUnit XML, HTML). Exit 0 when all pass, 1 when any fails or times
out, 2 on bad input. See docs/notebook-ci.md."""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("check", help="validate notebooks headless for CI (papermill + nbval, JUnit/HTML reports)",
                       description=__doc__.split("\n\n")[0].replace("`", ""))
    p.add_argument("paths", nargs="+", metavar="PATH", help="notebooks, or folders searched for *.ipynb")
    p.add_argument("--profile", default=None,
                   help="parameter profile from each notebook's metadata.workbench.profiles "
                        "(default: 'ci' where a notebook has it, else its own defaults; "
                        "'defaults': every notebook's parameters cell as written)")
    p.add_argument("--params", metavar="FILE.yaml",
                   help="override parameters: top-level keys for every notebook declaring them, "
                        "'<name>.ipynb: {...}' for one notebook")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds allowed per notebook (counted from its first cell)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="notebooks run in parallel; each kernel gets cores // N threads (default 1)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="folder for the executed notebooks and their HTML (default: runs/check-<time>)")
    p.add_argument("--junit", nargs="?", const="report.xml", metavar="report.xml",
                   help="write a JUnit XML report, one test case per notebook (default name: report.xml)")
    p.add_argument("--html", nargs="?", const="report.html", metavar="report.html",
                   help="write an HTML summary linking each executed notebook (default name: report.html)")
    cmp = p.add_mutually_exclusive_group()
    cmp.add_argument("--nbval", dest="compare", action="store_const", const="strict",
                     help="compare every cell's outputs with the stored ones, unless marked "
                          "NBVAL_IGNORE_OUTPUT / NBVAL_SKIP (nbval's --nbval)")
    cmp.add_argument("--nbval-lax", dest="compare", action="store_const", const="lax",
                     help="compare only cells marked NBVAL_CHECK_OUTPUT (nbval's --nbval-lax; the default)")
    cmp.add_argument("--no-compare", dest="compare", action="store_const", const="off",
                     help="don't compare outputs; fail only on errors and timeouts")
    p.add_argument("--nbval-sanitize-with", metavar="FILE",
                   help="nbval sanitize file (regex:/replace: lines) applied before comparing")
    p.set_defaults(func=run, compare="lax")


def _print_result(r) -> None:
    label = {"passed": "PASSED", "failed": "FAILED", "timed out": "TIMEOUT"}[r.status]
    print(f"{label:8} {r.name}  ({r.seconds:.1f} s)", flush=True)
    if r.failure:
        from ..checking.report_junit import failure_text

        for line in failure_text(r).splitlines():
            print(f"         {line}")
        if r.executed:
            print(f"         see {r.html or r.executed}")
        sys.stdout.flush()


def run(args) -> int:
    from ..checking import plan_check, run_plan
    from ..checking.report_html import write_html
    from ..checking.report_junit import write_junit
    from ._paths import check_output_file

    for flag, target in (("--junit", args.junit), ("--html", args.html)):
        if target:
            check_output_file(target, flag)
    plan = plan_check(args.paths, profile=args.profile, params_file=args.params, out_dir=args.output,
                      jobs=args.jobs, timeout=args.timeout, compare=args.compare,
                      sanitize_with=args.nbval_sanitize_with)
    print(f"checking {len(plan.notebooks)} notebooks, {plan.jobs} at a time with {plan.threads} threads each; "
          f"output in {plan.out_dir}", flush=True)
    result = run_plan(plan, on_result=_print_result)
    counts = result.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"{len(result.results)} notebooks: {summary} in {result.seconds:.1f} s")
    if args.junit:
        print(f"junit: {write_junit(result, Path(args.junit))}")
    if args.html:
        print(f"html: {write_html(result, Path(args.html))}")
    return result.exit_code
