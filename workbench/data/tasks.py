"""Verifiable tasks: a seeded generator of problems with known answers, and checkers that
double as reward functions (TRL GRPO calls them with the dataset's extra columns).

Kinds: arithmetic, word_problem, count_letters, count_words, sorting, unit_conversion,
string_transform. Styles: "cot" (reason step by step, end with "Answer: X") and "answer"
(reply with only the answer). A problem belongs to the eval split when a hash of its
question says so, whatever the seed, so train and eval never share a question.
"""
from __future__ import annotations

import hashlib
import random
import re
from typing import Callable, Iterable

KINDS = ("arithmetic", "word_problem", "count_letters", "count_words", "sorting",
         "unit_conversion", "string_transform")
STYLES = ("cot", "answer")
EVAL_SHARE = 10  # one question in EVAL_SHARE hashes into eval
COT_SUFFIX = "Think step by step, then give the final answer on the last line as 'Answer: <answer>'."
ANSWER_SUFFIX = "Reply with only the answer."

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena",
         "Maya", "Nils", "Omar", "Priya", "Rosa", "Sam", "Tomas", "Uma"]
ITEMS = ["apples", "stickers", "marbles", "books", "pencils", "cookies", "stamps", "shells", "cards", "coins"]
WORDS = ["strawberry", "banana", "mississippi", "committee", "balloon", "bookkeeper", "letter", "parallel",
         "assessment", "coffee", "programming", "necessary", "occurrence", "millennium", "address",
         "success", "rhythm", "pepper", "giraffe", "puzzle", "tomorrow", "accommodate", "bubble",
         "umbrella", "chocolate", "elephant", "pineapple", "raspberry", "engineering", "dictionary",
         "kangaroo", "lollipop", "cinnamon", "broccoli", "abracadabra", "volleyball", "grammar",
         "window", "teacher", "keyboard", "mountain", "library", "calendar", "definitely", "possession"]
NOUNS = ["dog", "cat", "child", "farmer", "teacher", "bird", "river", "train", "city", "garden", "student", "robot"]
ADJS = ["small", "quiet", "old", "bright", "happy", "tired", "green", "busy", "clever", "cold"]
VERBS = ["watched", "followed", "visited", "painted", "found", "crossed", "cleaned", "passed"]
PLACES = ["near the lake", "after lunch", "in the morning", "under a tree", "on Sunday", "by the station"]
UNITS = [  # (from, to, factor, singular-from)
    ("kilometres", "metres", 1000, "kilometre"), ("metres", "centimetres", 100, "metre"),
    ("kilograms", "grams", 1000, "kilogram"), ("hours", "minutes", 60, "hour"),
    ("minutes", "seconds", 60, "minute"), ("litres", "millilitres", 1000, "litre"),
    ("days", "hours", 24, "day"), ("weeks", "days", 7, "week"), ("centimetres", "millimetres", 10, "centimetre"),
]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# ---------------------------------------------------------------- generators
# Each returns (question, answer, steps) where steps are the chain of thought.

def _place_parts(n: int) -> list[int]:
    """4582 -> [4000, 500, 82]: the leading digits one by one, then the last two together."""
    s = str(n)
    parts = [int(d) * 10 ** (len(s) - 1 - i) for i, d in enumerate(s[:-2])] + [int(s[-2:]) if len(s) >= 2 else n]
    return [p for p in parts if p] or [0]


def arithmetic(rng: random.Random):
    op = rng.choice("+-×")
    if op == "×":
        a, b = rng.randint(12, 999), rng.randint(12, 99)
        tens, ones = b // 10 * 10, b % 10
        steps = [f"Split {b} into {tens} + {ones}.", f"{a} × {tens} = {a * tens}.", f"{a} × {ones} = {a * ones}.",
                 f"{a * tens} + {a * ones} = {a * b}."]
        return f"What is {a} × {b}?", str(a * b), steps
    a, b = rng.randint(100, 9999), rng.randint(100, 9999)
    if op == "-" and b > a:
        a, b = b, a
    total, steps = a, [f"Split {b} into {' + '.join(map(str, _place_parts(b)))}."]
    for part in _place_parts(b):
        new = total + part if op == "+" else total - part
        steps.append(f"{total} {op} {part} = {new}.")
        total = new
    return f"What is {a} {op} {b}?", str(total), steps


def word_problem(rng: random.Random):
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.randrange(4)
    if kind == 0:
        a, b, c = rng.randint(5, 60), rng.randint(2, 9), rng.randint(3, 15)
        q = (f"{name} has {a} {item}. {name} buys {b} packs with {c} {item} in each. "
             f"How many {item} does {name} have now?")
        return q, str(a + b * c), [f"The packs hold {b} × {c} = {b * c} {item}.", f"{a} + {b * c} = {a + b * c}."]
    if kind == 1:
        b, c = rng.randint(2, 9), rng.randint(2, 12)
        a = rng.randint(b * c, b * c + 80)
        q = f"{name} had {a} {item} and gave {c} to each of {b} friends. How many {item} are left?"
        return q, str(a - b * c), [f"{name} gave away {b} × {c} = {b * c} {item}.", f"{a} - {b * c} = {a - b * c}."]
    if kind == 2:
        per, groups = rng.randint(2, 12), rng.randint(2, 12)
        total = per * groups
        q = f"{name} shares {total} {item} equally among {groups} people. How many {item} does each person get?"
        return q, str(per), [f"{total} ÷ {groups} = {per}."]
    price, n, paid = rng.randint(2, 15), rng.randint(2, 6), 0
    paid = (price * n // 10 + 1) * 10 + rng.choice([0, 10, 40])
    q = (f"A notebook costs {price} dollars. {name} buys {n} notebooks and pays with {paid} dollars. "
         f"How much change does {name} get?")
    return q, str(paid - price * n), [f"{n} notebooks cost {n} × {price} = {price * n} dollars.",
                                      f"{paid} - {price * n} = {paid - price * n}."]


def count_letters(rng: random.Random):
    word = rng.choice(WORDS)
    letter = rng.choice(sorted(set(word)))
    positions = [i + 1 for i, ch in enumerate(word) if ch == letter]
    steps = [f"Spell it out: {'-'.join(word)}.",
             f"'{letter}' appears at position{'s' * (len(positions) > 1)} {', '.join(map(str, positions))}.",
             f"That is {len(positions)} time{'s' * (len(positions) > 1)}."]
    return f"How many times does the letter '{letter}' appear in the word '{word}'?", str(len(positions)), steps


def _sentence(rng: random.Random) -> str:
    parts = ["The", rng.choice(ADJS), rng.choice(NOUNS), rng.choice(VERBS), "the"]
    if rng.random() < 0.5:
        parts.append(rng.choice(ADJS))
    parts.append(rng.choice(NOUNS))
    if rng.random() < 0.6:
        parts += rng.choice(PLACES).split()
    return " ".join(parts) + "."


def count_words(rng: random.Random):
    s = _sentence(rng)
    words = s.rstrip(".").split()
    steps = ["Number the words: " + ", ".join(f"{w} ({i})" for i, w in enumerate(words, 1)) + ".",
             f"The last word is number {len(words)}."]
    return f"How many words are in this sentence: \"{s}\"", str(len(words)), steps


def sorting(rng: random.Random):
    k = rng.randint(4, 7)
    if rng.random() < 0.6:
        items = rng.sample(range(1, 200), k)
        q = f"Sort these numbers from smallest to largest: {', '.join(map(str, items))}."
        ordered = [str(x) for x in sorted(items)]
    else:
        items = rng.sample(WORDS + NOUNS, k)
        q = f"Sort these words alphabetically: {', '.join(items)}."
        ordered = sorted(items)
    steps = ([f"The first is {ordered[0]}."] + [f"Next comes {x}." for x in ordered[1:-1]]
             + [f"The last is {ordered[-1]}."])
    return q, ", ".join(ordered), steps


def unit_conversion(rng: random.Random):
    src, dst, factor, single = rng.choice(UNITS)
    value = rng.choice([rng.randint(2, 60), rng.randint(2, 40) + 0.5])
    result = value * factor
    unit = single if value == 1 else src
    steps = [f"1 {single} = {factor} {dst}.", f"{_fmt(value)} × {factor} = {_fmt(result)}."]
    return f"Convert {_fmt(value)} {unit} to {dst}.", _fmt(result), steps


def string_transform(rng: random.Random):
    kind = rng.randrange(4)
    if kind == 0:
        w = rng.choice(WORDS)
        return (f"Reverse the letters of the word '{w}'.", w[::-1],
                [f"Letters from last to first: {'-'.join(w[::-1])}."])
    if kind == 1:
        w = rng.choice(WORDS)
        out = "".join(c for c in w if c not in "aeiou")
        return (f"Remove every vowel (a, e, i, o, u) from the word '{w}'.", out,
                [f"Keep only the consonants of {'-'.join(w)}: {'-'.join(out)}."])
    if kind == 2:
        words = _sentence(rng).rstrip(".").split()
        out = "".join(x[0].upper() for x in words)
        return (f"Write the first letter of each word in \"{' '.join(words)}\" as one uppercase string.", out,
                [f"First letters: {', '.join(x[0] for x in words)}.", f"Together in uppercase: {out}."])
    w1, w2 = rng.sample(WORDS, 2)
    out = f"{w1}-{w2}".upper()
    return (f"Join '{w1}' and '{w2}' with a hyphen and write the result in uppercase.", out,
            [f"Joined: {w1}-{w2}.", f"In uppercase: {out}."])


GENERATORS: dict[str, Callable[[random.Random], tuple[str, str, list[str]]]] = {
    k: globals()[k] for k in KINDS}


def split_of(task: str, question: str) -> str:
    h = int(hashlib.sha256(f"{task}\n{question}".encode()).hexdigest(), 16)
    return "eval" if h % EVAL_SHARE == 0 else "train"


def make_row(task: str, question: str, answer: str, steps: list[str], style: str) -> dict:
    if style == "cot":
        prompt, solution = f"{question} {COT_SUFFIX}", "\n".join(steps) + f"\nAnswer: {answer}"
    else:
        prompt, solution = f"{question} {ANSWER_SUFFIX}", answer
    return {"prompt": [{"role": "user", "content": prompt}], "answer": answer, "task": task,
            "solution": solution, "style": style}


def generate(n: int, *, kinds: Iterable[str] | None = None, split: str = "train", seed: int = 0,
             style: str = "mixed") -> list[dict]:
    """`n` distinct verifiable rows of the given kinds (default all) from one split.
    style: "cot", "answer" or "mixed" (each row picks one at random)."""
    kinds = list(kinds or KINDS)
    unknown = [k for k in kinds if k not in GENERATORS]
    if unknown or split not in ("train", "eval") or style not in STYLES + ("mixed",):
        from .errors import DataError
        raise DataError(f"tasks.generate: unknown kind {unknown}, split {split!r} or style {style!r}; "
                        f"kinds: {', '.join(KINDS)}; styles: cot, answer, mixed")
    rng, seen, rows = random.Random(seed), set(), []
    for _ in range(n * 200):
        if len(rows) == n:
            break
        kind = rng.choice(kinds)
        question, answer, steps = GENERATORS[kind](rng)
        row_style = rng.choice(STYLES) if style == "mixed" else style
        if (kind, question) in seen or split_of(kind, question) != split:
            continue
        seen.add((kind, question))
        rows.append(make_row(kind, question, answer, steps, row_style))
    return rows


# ---------------------------------------------------------------- checking

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
NUMERIC_TASKS = {"arithmetic", "word_problem", "count_letters", "count_words", "unit_conversion"}


def extract_answer(text: str) -> str | None:
    """The final answer in a completion: what follows the last 'Answer:', else the last
    non-empty line. None for an empty completion."""
    matches = list(re.finditer(r"answer\s*(?:is)?\s*[:=]\s*", text, re.IGNORECASE))
    if matches:
        tail = text[matches[-1].end():].strip().splitlines()
        return tail[0].strip() if tail else ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


def _clean(s: str) -> str:
    return s.strip().strip("`*\"'").rstrip(".").strip().strip("\"'")


def _number(s: str) -> float | None:
    m = _NUMBER.search(s)
    return float(m.group().replace(",", "")) if m else None


def _items(s: str) -> list[str]:
    return [x for x in re.split(r"[,\s]+", _clean(s)) if x]


def check(task: str, completion: str, answer: str) -> float:
    """1.0 if the completion's final answer is right, 0.0 if wrong or missing. Sorting gets
    partial credit: the share of positions right, when the reply uses exactly the given items."""
    got = extract_answer(completion)
    if got is None:
        return 0.0
    got, answer = _clean(got), _clean(str(answer))
    if task in NUMERIC_TASKS or (task not in GENERATORS and _number(answer) is not None
                                 and _NUMBER.fullmatch(answer)):
        # "18 × 2 = 36": a worked equation's result is what follows its last '='.
        g, a = _number(got.rsplit("=", 1)[-1]), _number(answer)
        return float(g is not None and a is not None and abs(g - a) < 1e-9)
    if task == "sorting":
        g, a = _items(got), _items(answer)
        if g == a:
            return 1.0
        if sorted(g) != sorted(a):
            return 0.0
        return sum(x == y for x, y in zip(g, a)) / len(a)
    return float(got == answer)


def completion_text(completion) -> str:
    """Plain text of a completion that may be conversational (a list of messages)."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def reward_fn(completions, answer, task=None, **kwargs) -> list[float]:
    """TRL-GRPO reward function: `answer` and `task` come from the dataset's columns."""
    tasks = task if task is not None else ["custom"] * len(completions)
    return [check(t, completion_text(c), a) for c, a, t in zip(completions, answer, tasks)]


def make_reward_fn(partial_credit: bool = True) -> Callable[..., list[float]]:
    """A reward function for GRPO/RLOO; with partial_credit=False only exact answers score."""
    def verifiable_reward(completions, answer, task=None, **kwargs) -> list[float]:
        scores = reward_fn(completions, answer, task)
        return scores if partial_credit else [float(s == 1.0) for s in scores]
    return verifiable_reward
