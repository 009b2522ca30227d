"""`Decoder`: one interface for "a thing that generates" — any model source (built-in name,
hub id, local dir, run directory, merged run, `urial:<model>`) × any registered strategy.

    from workbench.decoding import Decoder
    d = Decoder("smollm2-135m-instruct", "best_of_n", {"n": 4, "reward": "length"})
    gens = d.generate(["Name three primes."])        # list[Generation]
    for piece in d.stream([{"role": "user", "content": "Hi"}]):   # TextIteratorStreamer
        print(piece, end="")

Strategies that are per-step logit transforms run inside `model.generate` as
LogitsProcessors (KV cache, batching, sampling warpers all kept); search strategies call
`model.generate` per candidate chunk."""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from ..analysis.prompts import encode, has_chat_template, normalise_prompts, render
from ..analysis.resolve import Side, check_spec, resolve_side
from ..analysis.scoring import eos_ids, left_pad, precision_context
from ..errors import WorkbenchError
from ..models.kv_cache import reserved_cache_kwargs
from ..models.sampling import fast_sampling
from .base import DecodeArgs, get_strategy, strategy_config


@dataclass
class Generation:
    prompt: str                       # the conversation's last user turn (plain text)
    text: str                         # the reply, special tokens removed
    token_ids: list[int]              # the reply's tokens (up to and including an EOS)
    info: dict = field(default_factory=dict)   # strategy extras: candidates + rewards, rejections…

    def to_json(self) -> dict:
        return {"prompt": self.prompt, "output": self.text, "n_tokens": len(self.token_ids), **self.info}


@dataclass
class Batch:
    """A batch of conversations as the target model sees them."""
    messages: list[list[dict]]
    ids: list[list[int]]              # rendered prompt ids per row (unpadded)
    input_ids: torch.Tensor           # left-padded B×P
    attention_mask: torch.Tensor
    columns: dict[str, list] = field(default_factory=dict)   # dataset columns per row (rewards)

    @property
    def width(self) -> int:
        return self.input_ids.shape[1]

    @property
    def prompts(self) -> list[str]:
        return [last_user(m) for m in self.messages]


def last_user(messages: list[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"),
                "\n\n".join(m["content"] for m in messages))


def as_conversation(x) -> list[dict]:
    """A string (one user turn) or a list of chat messages → chat messages."""
    if isinstance(x, str):
        return [{"role": "user", "content": x}]
    if isinstance(x, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in x):
        return [dict(m) for m in x]
    raise WorkbenchError(f"expected a string or a list of chat messages with 'role' and 'content', "
                         f"got {type(x).__name__}")


# ------------------------------------------------------------------ model sources

_SIDES: dict[str, Side] = {}
_SIDES_LOCK = threading.Lock()


def load_side(spec, *, name: str | None = None) -> Side:
    """A model source → Side, loading each named source once per process (so contestants,
    experts and the target share weights when they name the same model)."""
    if spec is not None and not isinstance(spec, (str, Path)):
        return resolve_side(spec, name=name)      # a Side or a (model, tokenizer) pair
    if spec is None or not str(spec).strip():
        raise WorkbenchError("no model given: name a built-in model, hub id, local dir or run directory")
    spec = str(spec)
    if spec.startswith("urial:"):
        inner = load_side(spec[len("urial:"):])
        return dataclasses.replace(inner, urial=True, name=name or spec)
    with _SIDES_LOCK:
        if spec not in _SIDES:
            check_spec(spec)
            side = resolve_side(spec)
            side.model.eval()
            if side.tokenizer.pad_token is None:
                side.tokenizer.pad_token = side.tokenizer.eos_token
            _SIDES[spec] = side
        side = _SIDES[spec]
    return dataclasses.replace(side, name=name) if name else side


def clear_cache() -> None:
    """Forget the loaded models (frees their memory once nothing else holds them)."""
    with _SIDES_LOCK:
        _SIDES.clear()


def check_vocab(target: Side, other: Side, role: str, strategy: str) -> None:
    """Logit arithmetic across models needs one vocabulary: one clear line otherwise."""
    if target.tokenizer is other.tokenizer:
        return
    va, vb = target.tokenizer.get_vocab(), other.tokenizer.get_vocab()
    if va != vb:
        raise WorkbenchError(
            f"{strategy}: {role} {other.name!r} and target {target.name!r} use different vocabularies "
            f"({len(vb)} vs {len(va)} tokens, {len(set(vb) - set(va))} not in the target's, or ids differ); "
            "combining logits token by token needs the same tokenizer")


def prompt_ids(side: Side, messages: list[list[dict]], *, urial: bool = False) -> list[list[int]]:
    """Each conversation rendered with this side's chat template (URIAL when asked) → ids."""
    tok = side.tokenizer
    texts = [render(tok, m, urial=side.urial or urial) for m in messages]
    return encode(tok, texts, templated=has_chat_template(tok))


def _device(side: Side):
    return next(side.model.parameters()).device


# ------------------------------------------------------------------ the decoder

class Decoder:
    """A model source decoded with one strategy.

    model: built-in name, hub id, local dir, run directory, `urial:<model>`, a Side or a
        (model, tokenizer) pair.
    strategy: a registered strategy name (`workbench.decoding.list_strategies()`).
    args: the strategy's knobs as a dict or its config dataclass; `**knobs` override.
    aux: already-loaded Sides for a strategy's other models, by knob name
        (e.g. {"base": side}); otherwise the knob's model spec is loaded.
    """

    def __init__(self, model, strategy: str = "plain", args: dict | DecodeArgs | None = None, *,
                 precision: str = "auto", aux: dict | None = None, name: str | None = None, **knobs):
        self.spec = get_strategy(strategy)
        self.config = strategy_config(strategy, args, **knobs)   # knobs checked before loading
        self.side = load_side(model, name=name)
        self.precision = precision
        self.aux = dict(aux or {})
        self.strategy = self.spec.factory(self, self.config)
        self.last: Generation | None = None

    @property
    def name(self) -> str:
        return f"{self.side.name} · {self.spec.name}" if self.spec.name != "plain" else self.side.name

    @property
    def tokenizer(self):
        return self.side.tokenizer

    def other(self, role: str, spec) -> Side:
        """Another model the strategy needs (an expert, a base…), by its knob name."""
        if role in self.aux:
            return load_side(self.aux[role])
        return load_side(spec)

    # -- batches --------------------------------------------------------------------
    def batch(self, messages: list[list[dict]], columns: dict | None = None) -> Batch:
        for i, m in enumerate(messages):
            if not m or not any(str(x.get("content", "")).strip() for x in m if x.get("role") == "user"):
                raise WorkbenchError(f"prompt {i}: empty prompt (give some text to answer)")
        ids = self.strategy.prompt_ids(self.side, messages)
        input_ids, mask = left_pad(ids, self.tokenizer.pad_token_id, _device(self.side))
        return Batch(messages, ids, input_ids, mask, dict(columns or {}))

    # -- generation -------------------------------------------------------------------
    def generate(self, prompts, *, columns: dict | None = None, batch_size: int = 8,
                 max_prompts: int | None = None, progress: bool = False) -> list[Generation]:
        """Replies to prompts (str, list of str or chat-message lists, a .txt/.json file or a
        dataset name). `columns`: per-prompt dataset columns a reward needs (`answer`…)."""
        if batch_size < 1:
            raise WorkbenchError(f"batch_size must be >= 1, got {batch_size}")
        msgs = normalise_prompts(prompts, max_prompts=max_prompts)
        cols = {k: list(v)[:len(msgs)] for k, v in (columns or {}).items()}
        torch.manual_seed(self.config.seed)
        out: list[Generation] = []
        from tqdm.auto import tqdm
        for start in tqdm(range(0, len(msgs), batch_size), desc=self.name, disable=not progress):
            b = self.batch(msgs[start:start + batch_size], {k: v[start:start + batch_size] for k, v in cols.items()})
            out += self._run(b)
        return out

    def stream(self, messages, *, columns: dict | None = None, timeout: float | None = None) -> Iterator[str]:
        """Generate one reply to one conversation (a string or chat messages, multi-turn
        allowed), yielding text as it is decoded; `self.last` holds the Generation after."""
        from transformers import TextIteratorStreamer

        b = self.batch([as_conversation(messages)], columns)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=timeout)
        result: dict[str, Any] = {}

        def work():
            try:
                torch.manual_seed(self.config.seed)
                result["gens"] = self._run(b, streamer)
            except BaseException as e:  # noqa: BLE001 — re-raised in the caller's thread
                result["error"] = e
                streamer.end()

        self.last = None
        thread = threading.Thread(target=work, name="workbench-decode", daemon=True)
        thread.start()
        stop = self.strategy.stop_strings()
        text = ""
        for piece in streamer:
            if stop:   # the URIAL plain format: hide the closing fence and what follows
                before = len(text)
                text += piece
                cut = min((text.find(s) for s in stop if s in text), default=-1)
                if cut >= 0:
                    if cut > before:
                        yield text[before:cut]
                    for _ in streamer:   # drain: generation stops at the stop string
                        pass
                    break
                yield piece
            else:
                yield piece
        thread.join()
        if "error" in result:
            raise result["error"]
        self.last = result["gens"][0]

    def _run(self, batch: Batch, streamer=None) -> list[Generation]:
        t0 = time.perf_counter()
        gens = self.strategy.generate(batch, streamer)
        dt = time.perf_counter() - t0
        for g in gens:
            g.info.setdefault("seconds", round(dt / len(gens), 4))
        return gens

    # -- helpers for strategies -------------------------------------------------------
    def run_generate(self, input_ids, attention_mask, *, processors=(), streamer=None,
                     num_return_sequences: int = 1, max_new_tokens: int | None = None,
                     side: Side | None = None, sample: bool | None = None) -> torch.Tensor:
        """model.generate with this decoder's knobs (+ logits processors); the new tokens
        (B·n × T, finished rows padded)."""
        from transformers import LogitsProcessorList

        side = side or self.side
        model, tok = side.model, side.tokenizer
        cfg = self.config if sample is None else dataclasses.replace(self.config, sample=sample)
        kwargs = cfg.generate_kwargs()
        kwargs.update(max_new_tokens=max_new_tokens or cfg.max_new_tokens, pad_token_id=tok.pad_token_id,
                      eos_token_id=eos_ids(model, tok), num_return_sequences=num_return_sequences)
        if processors:
            kwargs["logits_processor"] = LogitsProcessorList(processors)
        stop = self.strategy.stop_strings()
        if stop:
            kwargs.update(stop_strings=stop, tokenizer=tok)
        with torch.inference_mode(), side.context(), precision_context(model, self.precision), fast_sampling():
            kwargs.update(reserved_cache_kwargs(model, input_ids.shape[1] + kwargs["max_new_tokens"]))
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, streamer=streamer, **kwargs)
        return out[:, input_ids.shape[1]:]

    def reply_tokens(self, row: torch.Tensor | list[int]) -> list[int]:
        """A generated row up to and including its first EOS (padding after it dropped)."""
        row = row.tolist() if isinstance(row, torch.Tensor) else list(row)
        eos = set(eos_ids(self.side.model, self.tokenizer))
        cut = next((i + 1 for i, x in enumerate(row) if x in eos), len(row))
        return row[:cut]

    def reply_text(self, tokens: list[int]) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        for s in self.strategy.stop_strings() or ():
            if s in text:
                text = text[:text.index(s)]
        return text.strip() if self.strategy.stop_strings() else text

    def generation(self, batch: Batch, r: int, row, **info) -> Generation:
        toks = self.reply_tokens(row)
        return Generation(batch.prompts[r], self.reply_text(toks), toks, info)


# ------------------------------------------------------------------ prompt sources

_NOT_COLUMNS = ("prompt", "completion", "solution", "messages", "chosen", "rejected")


def load_prompts(source, *, max_prompts: int | None = None) -> tuple[list[list[dict]], dict[str, list]]:
    """Prompts + the dataset columns rewards need (`answer`, `task`…): a .txt/.json file, a
    dataset name / local data file (its eval split), or a list of prompts."""
    if not isinstance(source, (str, Path)):
        return normalise_prompts(source, max_prompts=max_prompts), {}
    path = Path(str(source)).expanduser()
    if path.is_file() and path.suffix in (".txt", ".md", ".json"):
        return normalise_prompts(str(source), max_prompts=max_prompts), {}
    from ..data import load
    try:
        ds = load(str(source), split="eval", max_rows=max_prompts)
    except WorkbenchError:
        ds = None
    if ds is not None and "prompt" in ds.column_names:
        msgs = normalise_prompts(list(ds["prompt"]), max_prompts=max_prompts)
        cols = {c: list(ds[c])[:len(msgs)] for c in ds.column_names if c not in _NOT_COLUMNS}
        return msgs, cols
    return normalise_prompts(str(source), max_prompts=max_prompts), {}
