"""Each merge method's doc card: its section of docs/merging.md (`## <name>`)."""
from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "merging.md"


def card(name: str) -> str | None:
    """The `## name` section of docs/merging.md, or None (e.g. an installed copy without docs)."""
    if not DOC.is_file():
        return None
    text = DOC.read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(name)}\b.*?(?=^## |\Z)", text, flags=re.M | re.S)
    return m.group(0).strip() if m else None
