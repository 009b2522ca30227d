"""`skip_iri_grammars` (workbench/notebooks.py): in the processes the workbench owns, jsonschema
is imported without building rfc3987_syntax's grammars, and notebooks still validate; a user's
own process that merely imports workbench is left as it was."""
import importlib.metadata
import os
import subprocess
import sys

import pytest

PROBE = """
import sys
{setup}
import nbformat
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
nbformat.validate(nb)
bad = nbformat.from_dict(nb)
del bad.cells[0]["outputs"]  # a code cell must have outputs
try:
    nbformat.validate(bad)
    print("INVALID-ACCEPTED")
except nbformat.ValidationError:
    pass
print("IRI", sys.modules.get("rfc3987_syntax") is not None)
"""


@pytest.mark.parametrize("setup, env, imported", [
    ("import workbench", {"WORKBENCH_HEADLESS": "1"}, False),   # a kernel workbench runs headless
    ("from workbench.notebooks import skip_iri_grammars; skip_iri_grammars()", {}, False),  # CLI, workers
    ("import workbench", {"WORKBENCH_HEADLESS": ""}, True),     # anyone else's process: untouched
], ids=["headless-kernel", "owned-process", "user-process"])
def test_iri_grammars_are_skipped_only_where_the_workbench_owns_the_process(setup, env, imported):
    try:  # (not find_spec: tests/conftest.py has marked the package absent in this process)
        importlib.metadata.distribution("rfc3987-syntax")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("rfc3987_syntax is not installed (it comes with jupyter-events' jsonschema extra)")
    base = {k: v for k, v in os.environ.items() if k != "WORKBENCH_HEADLESS"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], env={**base, **env},
                         capture_output=True, text=True, check=True).stdout
    assert "INVALID-ACCEPTED" not in out  # validation still rejects a bad notebook
    assert f"IRI {imported}" in out, out
