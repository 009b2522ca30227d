"""Property: any valid row, plain or conversational, survives normalisation unchanged in
meaning, normalising twice changes nothing, and the canonical row comes back identical
after a trip through a UTF-8 JSONL file, the loader and Arrow."""
import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from workbench.data import load
from workbench.data.formats import detect, normalise

# Any non-blank text without lone surrogates (which UTF-8 cannot carry).
text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(str.strip)
role = st.sampled_from(["system", "user", "assistant"])
msg = st.builds(lambda r, c: {"role": r, "content": c}, role, text)
assistant = st.builds(lambda c: [{"role": "assistant", "content": c}], text)
prompt = st.one_of(text, st.lists(msg, min_size=1, max_size=3))
reply = st.one_of(text, assistant)


def _content(reply_) -> str:
    return reply_ if isinstance(reply_, str) else reply_[0]["content"]


def _messages():
    return st.builds(lambda before, last: {"messages": before + [{"role": "assistant", "content": last}]},
                     st.lists(msg, max_size=3), text)


def _ranked():
    return st.integers(2, 4).flatmap(lambda k: st.builds(
        lambda p, rs, ss: {"prompt": p, "responses": rs, "scores": ss}, prompt,
        st.lists(reply, min_size=k, max_size=k),
        st.lists(st.floats(-10, 10, allow_nan=False).map(lambda x: round(x, 3)), min_size=k, max_size=k)))


ROWS = {
    "text": st.builds(lambda t: {"text": t}, text),
    "messages": _messages(),
    "prompt_completion": st.builds(lambda p, c: {"prompt": p, "completion": c}, prompt, reply),
    "preference": st.builds(lambda p, c, r, k: {"prompt": p, "chosen": c, "rejected": r, "criterion": k},
                            prompt, reply, reply, text).filter(  # a pair of one reply twice is a bad row
        lambda row: _content(row["chosen"]).strip() != _content(row["rejected"]).strip()),
    "unpaired": st.builds(lambda p, c, lab: {"prompt": p, "completion": c, "label": lab}, prompt, reply, st.booleans()),
    "ranked": _ranked(),
    "verifiable": st.builds(lambda p, a, t, s: {"prompt": p, "answer": a, "task": t, "solution": s},
                            prompt, text, text, text),
}


def _contents(value):
    return [value] if isinstance(value, str) else [m["content"] for m in value]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(ROWS)).flatmap(lambda f: st.tuples(st.just(f), ROWS[f])))
# Cases found to matter: a line separator inside a string, text that looks like JSON.
@example(("text", {"text": "one\u2028two"}))
@example(("prompt_completion", {"prompt": "[1, 2]", "completion": "{}"}))
def test_valid_rows_round_trip(tmp_path, case):
    fmt, row = case
    assert detect(row) == fmt
    canon = normalise(row, fmt)
    assert normalise(canon, fmt) == canon
    # Plain strings become messages without any change to their text.
    for field in ("prompt", "completion", "chosen", "rejected"):
        if field in row:
            assert [m["content"] for m in canon[field]] == _contents(row[field])
    path = tmp_path / "row.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load(path, seed=None).to_list() == [canon]
