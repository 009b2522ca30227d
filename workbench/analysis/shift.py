"""Token-distribution shift (TDS), as "The Unlocking Spell on Base LLMs" (URIAL) defines it.

Decode with the tuned model; teacher-force prompt + that output through the base; at each
output position rank the tuned token in the base's next-token distribution:
rank 1 = unshifted, 2–3 = marginal, > 3 = shifted."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..allocator import keep_freed_memory
from ..errors import WorkbenchError
from ..threads import size_torch_threads
from .prompts import encode, has_chat_template, normalise_prompts, render
from .resolve import Side, check_spec, resolve_pair
from .scoring import (
    decoding_copy,
    generate,
    prefix_continuations,
    resolved_precision,
    teacher_forced_token_logits,
    token_stats,
)

CATEGORIES = ("unshifted", "marginal", "shifted")


def categorise(rank) -> np.ndarray:
    rank = np.asarray(rank)
    return np.where(rank == 1, "unshifted", np.where(rank <= 3, "marginal", "shifted"))


@dataclass
class ShiftResult:
    """Per-token records of a TDS run plus the views built from them."""
    records: pd.DataFrame           # one row per analysed output token
    prompts: list[str]              # the user prompts (plain text), by prompt_id
    outputs: list[str]              # the tuned model's decoded outputs, by prompt_id
    base_name: str
    tuned_name: str
    timings: dict = field(default_factory=dict)   # generate_s, analysis_s
    settings: dict = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return len(self.records)

    @property
    def fractions(self) -> dict[str, float]:
        counts = self.records["category"].value_counts()
        n = max(len(self.records), 1)
        return {c: float(counts.get(c, 0)) / n for c in CATEGORIES}

    @property
    def tokens_per_s(self) -> dict[str, float]:
        """Analysed tokens per second: teacher forcing + maths only, and end to end
        (including the tuned model's decoding)."""
        a, g = self.timings.get("analysis_s", 0.0), self.timings.get("generate_s", 0.0)
        return {"analysis": self.n_tokens / a if a else float("nan"),
                "end_to_end": self.n_tokens / (a + g) if a + g else float("nan")}

    def by_position(self, bucket: int = 1) -> pd.DataFrame:
        """Category fractions and mean KL per output position (bucketed)."""
        df = self.records.assign(pos=(self.records["position"] // bucket) * bucket)
        frac = pd.crosstab(df["pos"], df["category"], normalize="index")
        frac = frac.reindex(columns=list(CATEGORIES), fill_value=0.0)
        frac["n"] = df.groupby("pos").size()
        frac["mean_kl"] = df.groupby("pos")["kl"].mean()
        return frac.rename_axis("position").reset_index()

    def top_shifted(self, n: int = 20) -> pd.DataFrame:
        """The most frequent shifted tokens, with how often each token was shifted when
        it occurred at all."""
        shifted = self.records[self.records["category"] == "shifted"]
        counts = shifted["token"].value_counts().head(n)
        occ = self.records["token"].value_counts()
        return pd.DataFrame({"token": counts.index, "count": counts.values,
                             "occurrences": occ.reindex(counts.index).values,
                             "shifted_rate": (counts / occ.reindex(counts.index)).values})

    def position_figure(self, bucket: int = 1):
        from .plots import position_profile
        return position_profile(self.by_position(bucket), title=self._title("by position"))

    def top_shifted_figure(self, n: int = 20):
        from .plots import token_bar
        return token_bar(self.top_shifted(n), title=self._title(f"top {n} shifted tokens"))

    def _title(self, what: str) -> str:
        return f"Token shift {self.tuned_name} vs {self.base_name}: {what}"

    def to_json(self, path: str | Path | None = None, n_top: int = 20) -> dict:
        tps = self.tokens_per_s
        stats = {
            **self.fractions,
            "base": self.base_name, "tuned": self.tuned_name,
            "n_tokens": self.n_tokens, "n_prompts": len(self.prompts),
            "mean_kl": float(self.records["kl"].mean()) if self.n_tokens else 0.0,
            "top_shifted": self.top_shifted(n_top).to_dict("records"),
            "tokens_per_s": tps["analysis"], "tokens_per_s_end_to_end": tps["end_to_end"],
            **{k: float(v) for k, v in self.timings.items()},
            "settings": self.settings,
        }
        if path is not None:
            Path(path).write_text(json.dumps(stats, indent=2, default=_json_default))
        return stats

    def to_html(self, path: str | Path | None = None, *, plots: bool = True,
                max_prompts: int | None = None) -> str:
        from .html import shift_report
        html = shift_report(self, plots=plots, max_prompts=max_prompts)
        if path is not None:
            Path(path).write_text(html, encoding="utf-8")
        return html

    def _repr_html_(self) -> str:
        """Headline shares, the most shifted tokens, then the coloured token view."""
        from .. import html_repr as hr
        from .html import token_view

        f = self.fractions
        figures = [(c, hr.fmt(f[c], "%")) for c in CATEGORIES]
        figures += [("output tokens", hr.fmt(self.n_tokens)), ("prompts", hr.fmt(len(self.prompts))),
                    ("mean KL(tuned‖base)", hr.fmt(float(self.records["kl"].mean())) if self.n_tokens else "–")]
        top = self.top_shifted(5).assign(shifted_rate=lambda d: [hr.fmt(x, "%") for x in d["shifted_rate"]])
        return hr.block(hr.headline(f"Token shift: {self.tuned_name} vs {self.base_name}", figures),
                        hr.table(top) if len(top) else "<p>No shifted tokens.</p>",
                        token_view(self, max_prompts=5))


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


def _texts(side: Side, msgs: list, system: str | None) -> list[str]:
    if system:
        msgs = [[{"role": "system", "content": system}, *m] for m in msgs]
    return [render(side.tokenizer, m, urial=side.urial) for m in msgs]


def _stop_strings(side: Side) -> list[str] | None:
    # The plain-text URIAL format closes each answer with ``` instead of an EOS token.
    return ["```"] if side.urial and not has_chat_template(side.tokenizer) else None


def _trim_at_stop(tok, out_ids: torch.Tensor, valid: torch.Tensor, stop: list[str]) -> torch.Tensor:
    """Cut each row after the token that completes a stop string."""
    valid = valid.clone()
    for i in range(out_ids.shape[0]):  # per row (display-level string search)
        pieces = tok.batch_decode(out_ids[i, :, None])
        text = ""
        for t, piece in enumerate(pieces):
            text += piece
            if any(s in text for s in stop):
                valid[i, t + 1:] = False
                break
    return valid


def token_shift(base, tuned, prompts, *, max_new_tokens: int = 64, batch_size: int = 16,
                top_k: int = 5, tuned_system_prompt: str | None = None, greedy: bool = True,
                rescore_tuned: bool = False, precision: str = "fp32",
                max_prompts: int | None = None, progress: bool = True,
                seed: int = 0) -> ShiftResult:
    """Measure where a tuned model's outputs depart from its base, token by token.

    base, tuned: (model, tokenizer), a model name / hub id / local dir, a run directory,
        or "urial:<model>" (the model with an in-context alignment prompt, so the
        zero-training baseline can be probed the same way).
    prompts: list of str or of chat-message lists, a .txt file (one per line), a .json
        list, a .jsonl/.csv/.parquet table of prompts only (every row), or a dataset (a name,
        or a table with answers: its eval split's `prompt` column).
    rescore_tuned: teacher-force the tuned side too instead of using the logits its
        decoding produced. Same numbers up to float rounding, one more forward per batch;
        use it when you need KL exactly 0 for identical models under bf16.
    precision: "fp32" (default) gives the same split on every CPU. "bf16" (or "auto" where
        the CPU has bf16) is faster but changes the greedy decode itself: on the 30-step demo
        run it read 91.9 / 7.5 / 0.6 % against fp32's 87.6 / 10.5 / 1.9 %. The result
        records `precision_resolved`.
    """
    for name, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size), ("top_k", top_k),
                        ("max_prompts", 1 if max_prompts is None else max_prompts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:  # the CLI says it with its flags
            raise WorkbenchError(f"token_shift: {name} must be an integer >= 1, got {value!r}")
    check_spec(tuned)  # cheap checks first (knobs, names, then prompts), then the loading
    check_spec(base)
    size_torch_threads()
    keep_freed_memory()
    msgs = normalise_prompts(prompts, max_prompts=max_prompts)
    b, t = resolve_pair(base, tuned)
    torch.manual_seed(seed)
    for side in {id(b.model): b, id(t.model): t}.values():
        side.model.eval()

    t_texts = _texts(t, msgs, tuned_system_prompt)
    b_texts = _texts(b, msgs, None)
    t_ids = encode(t.tokenizer, t_texts, templated=has_chat_template(t.tokenizer))
    b_ids = encode(b.tokenizer, b_texts, templated=has_chat_template(b.tokenizer))
    # Batches of similar length waste less on padding.
    order = sorted(range(len(msgs)), key=lambda i: len(t_ids[i]))
    stop = _stop_strings(t)

    chunks, outputs = [], [""] * len(msgs)
    gen_s = ana_s = 0.0
    t0 = time.perf_counter()
    decoder = decoding_copy(t, precision)
    gen_s += time.perf_counter() - t0
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for idx in tqdm(batches, desc="token shift", disable=not progress):
        t0 = time.perf_counter()
        out_ids, valid, tuned_logits = generate(
            decoder, [t_ids[i] for i in idx], max_new_tokens=max_new_tokens, greedy=greedy,
            precision=precision, stop_strings=stop)
        if stop:
            valid = _trim_at_stop(t.tokenizer, out_ids, valid, stop)
        t1 = time.perf_counter()
        # Only the valid positions from here on: rows that stopped early are not analysed.
        rows, pos = valid.nonzero(as_tuple=True)
        conts = prefix_continuations(out_ids, valid)
        base_logits = teacher_forced_token_logits(b, [b_ids[i] for i in idx], conts, precision=precision)
        if rescore_tuned:
            tuned_logits = teacher_forced_token_logits(t, [t_ids[i] for i in idx], conts, precision=precision)
        else:
            tuned_logits = tuned_logits[rows, pos]
        tokens = out_ids[rows, pos]
        s = token_stats(base_logits, tuned_logits.to(base_logits.device), tokens.to(base_logits.device), top_k)
        chunks.append({
            "prompt_id": torch.tensor(idx)[rows.cpu()].numpy(), "position": pos.cpu().numpy(),
            "token_id": tokens.cpu().numpy(),
            **{k: s[k].cpu().numpy() for k in ("base_rank", "base_prob", "tuned_prob", "kl",
                                                "topk_ids", "topk_probs")},
        })
        ana_s += time.perf_counter() - t1
        gen_s += t1 - t0
        for r, i in enumerate(idx):
            outputs[i] = t.tokenizer.decode(out_ids[r][valid[r]], skip_special_tokens=False)
    del decoder

    records = _records(chunks, t.tokenizer)
    return ShiftResult(
        records=records,
        prompts=["\n\n".join(m["content"] for m in ms) for ms in msgs],
        outputs=outputs, base_name=b.name, tuned_name=t.name,
        timings={"generate_s": gen_s, "analysis_s": ana_s},
        settings={"max_new_tokens": max_new_tokens, "batch_size": batch_size, "top_k": top_k,
                  "greedy": greedy, "rescore_tuned": rescore_tuned, "precision": precision,
                  # what "auto" became here: the decode itself (and so every number) depends on it
                  "precision_resolved": resolved_precision(t.model, precision),
                  "tuned_system_prompt": tuned_system_prompt,
                  "eos_token": t.tokenizer.eos_token},
    )


def _records(chunks: list[dict], tok) -> pd.DataFrame:
    cols = ("prompt_id", "position", "token_id", "base_rank", "base_prob", "tuned_prob", "kl")
    if not chunks:
        return pd.DataFrame(columns=[*cols, "token", "category", "base_topk"])
    data = {c: np.concatenate([ch[c] for ch in chunks]) for c in cols}
    topk_ids = np.concatenate([ch["topk_ids"] for ch in chunks])
    topk_probs = np.concatenate([ch["topk_probs"] for ch in chunks])
    # Decode each distinct id once (display only).
    uniq = np.unique(np.concatenate([data["token_id"], topk_ids.ravel()]))
    text = dict(zip(uniq.tolist(), tok.batch_decode(uniq[:, None].tolist())))
    df = pd.DataFrame(data).sort_values(["prompt_id", "position"], kind="stable")
    order = df.index.to_numpy()
    df = df.reset_index(drop=True)
    df.insert(3, "token", [text[i] for i in df["token_id"].tolist()])
    df["category"] = pd.Categorical(categorise(df["base_rank"]), categories=list(CATEGORIES))
    ids, probs = topk_ids[order].tolist(), topk_probs[order].tolist()
    df["base_topk"] = [[(text[i], float(p)) for i, p in zip(ri, rp)] for ri, rp in zip(ids, probs)]
    return df
