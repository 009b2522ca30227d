"""`workbench check`: validate notebooks headless, the way CI should.

Finds notebooks (`discover`), resolves each one's parameters for a profile from its own
metadata plus a YAML override file (`profiles`), executes them with papermill in parallel
worker processes that share the cores (`runner`, `worker`), optionally compares outputs
the nbval way (`compare`), and reports per notebook to the console, JUnit XML
(`report_junit`) and an HTML summary (`report_html`).

Imports no widget code.
"""
from __future__ import annotations

from .runner import CheckPlan, CheckResult, NotebookResult, check_notebooks, plan_check, run_plan

__all__ = ["CheckPlan", "CheckResult", "NotebookResult", "check_notebooks", "plan_check", "run_plan"]
