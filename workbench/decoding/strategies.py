"""The built-in decoding strategies: config dataclass + Strategy class each, registered at
import. Cards (paper, formula, knobs, what to watch): docs/decoding.md."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..errors import WorkbenchError
from .base import DecodeArgs, StrategySpec, knob, register
from .processors import AuxStream, ContrastiveProcessor, InstructiveProcessor, LookBackProcessor, ProxyTuningProcessor
from .urial import URIAL_PLAIN_STOP

if TYPE_CHECKING:
    from .generator import Batch, Decoder, Generation


def _require(cfg, *names: str) -> None:
    for n in names:
        if not str(getattr(cfg, n) or "").strip():
            raise WorkbenchError(f"strategy.{n} is required: name a model (built-in name, hub id, "
                                 "local dir or run directory)")


# ------------------------------------------------------------------ plain

@dataclass
class PlainArgs(DecodeArgs):
    """Greedy or sampled decoding with model.generate."""


class Strategy:
    """Base: render each prompt with the model's chat template and call model.generate with
    this strategy's logits processors. Search strategies override `generate`."""
    urial = False

    def __init__(self, decoder: "Decoder", cfg):
        self.decoder, self.cfg = decoder, cfg
        self.stats: dict = {}

    @property
    def side(self):
        return self.decoder.side

    def prompt_ids(self, side, messages):
        from .generator import prompt_ids
        return prompt_ids(side, messages, urial=self.urial)

    def stop_strings(self) -> list[str] | None:
        from ..analysis.prompts import has_chat_template
        uses_urial = self.urial or self.side.urial
        return [URIAL_PLAIN_STOP] if uses_urial and not has_chat_template(self.side.tokenizer) else None

    def processors(self, batch: "Batch") -> list:
        return []

    def info(self, procs) -> dict:
        return {}

    def generate(self, batch: "Batch", streamer=None) -> list["Generation"]:
        procs = self.processors(batch)
        out = self.decoder.run_generate(batch.input_ids, batch.attention_mask, processors=procs, streamer=streamer)
        extra = self.info(procs)
        return [self.decoder.generation(batch, r, out[r], **extra) for r in range(out.shape[0])]

    def aux_stream(self, side, batch: "Batch", *, messages=None, urial: bool = False) -> AuxStream:
        from .generator import prompt_ids
        ids = prompt_ids(side, messages or batch.messages, urial=urial)
        return AuxStream(side, ids, batch.width, self.decoder.precision)


class Plain(Strategy):
    pass


register(StrategySpec("plain", PlainArgs, "greedy or sampled decoding (temperature, top-p, top-k, seed)", Plain))


# ------------------------------------------------------------------ URIAL

@dataclass
class UrialArgs(DecodeArgs):
    """The model prompted with URIAL's system prompt + three stylistic examples."""


class Urial(Strategy):
    urial = True


register(StrategySpec("urial", UrialArgs, "URIAL: in-context alignment prompt (system + 3 examples), no training",
                      Urial, paper="Lin et al. 2023, The Unlocking Spell on Base LLMs"))


# ------------------------------------------------------------------ rewards (best-of-N, search)

def _reward_spec_help() -> str:
    return ("reward spec as in workbench.onpolicy.rewards: a name (correct, format, length, keywords, python, "
            "reward_model), 'a,b', or a mapping/list with weights and knobs (YAML)")


@dataclass
class _RewardArgs(DecodeArgs):
    sample: bool = knob(True, "sample the candidates (best-of-N needs diversity)")
    n: int = knob(4, "candidates per prompt (per chunk for search)")
    reward: str | dict | list = knob("length", _reward_spec_help())

    def __post_init__(self):
        super().__post_init__()
        if self.n < 1:
            raise WorkbenchError(f"strategy.n must be >= 1, got {self.n}")
        from ..onpolicy.rewards import check_rewards
        check_rewards(self.reward)


class _Rewarded(Strategy):
    def __init__(self, decoder, cfg):
        super().__init__(decoder, cfg)
        from ..onpolicy.rewards import build_rewards
        self.rewards = build_rewards(cfg.reward)

    def score(self, prompts: list[str], completions: list[str], columns: dict, rows: list[int]):
        from ..onpolicy.rewards import score
        cols = {k: [v[r] for r in rows] for k, v in columns.items()}
        return score(self.rewards, prompts, completions, cols)


@dataclass
class BestOfNArgs(_RewardArgs):
    """Sample n replies, keep the one the reward scores highest."""


class BestOfN(_Rewarded):
    def generate(self, batch, streamer=None):
        d, n, B = self.decoder, self.cfg.n, len(batch.messages)
        out = d.run_generate(batch.input_ids, batch.attention_mask, num_return_sequences=n)
        toks = [d.reply_tokens(row) for row in out]
        texts = [d.reply_text(t) for t in toks]
        rows = [r for r in range(B) for _ in range(n)]
        total, parts = self.score([batch.prompts[r] for r in rows], texts, batch.columns, rows)
        gens = []
        for r in range(B):
            idx = list(range(r * n, (r + 1) * n))
            best = max(idx, key=lambda i: total[i])           # first of equals
            cands = [{"text": texts[i], "reward": total[i], **{f"reward_{k}": v[i] for k, v in parts.items()}}
                     for i in idx]
            from .generator import Generation
            gens.append(Generation(batch.prompts[r], texts[best], toks[best],
                                   {"reward": total[best], "chosen": best - r * n, "candidates": cands}))
        if streamer is not None:
            _stream_all(streamer, batch, gens)
        return gens


register(StrategySpec("best_of_n", BestOfNArgs, "best-of-N: sample N replies, keep the highest reward", BestOfN,
                      paper="e.g. Stiennon et al. 2020; DeAL (Huang et al. 2024) for the search form"))


@dataclass
class RewardSearchArgs(_RewardArgs):
    """Chunk-level reward-guided search: n candidate chunks per step, keep the best."""
    chunk_tokens: int = knob(16, "tokens per search step (chunk)")

    def __post_init__(self):
        super().__post_init__()
        if self.chunk_tokens < 1:
            raise WorkbenchError(f"strategy.chunk_tokens must be >= 1, got {self.chunk_tokens}")


class _ChunkSearch(Strategy):
    """Grow each reply chunk by chunk: sample candidate chunks, keep the best-scoring one.

    Candidate 0 is drawn from the main random stream, the others from a forked one; ties
    keep candidate 0. So when every candidate scores the same, the reply is exactly what
    plain sampling with the same seed gives (the RNG advances as it would)."""

    def score_chunks(self, batch, accepted, cand_tokens, rows) -> list[float]:
        raise NotImplementedError

    def generate(self, batch, streamer=None):
        from .generator import Generation

        d, cfg, B = self.decoder, self.cfg, len(batch.messages)
        eos = set(_eos(d))
        pad = d.tokenizer.pad_token_id
        device = batch.input_ids.device
        seqs = [list(ids) for ids in batch.ids]             # prompt + everything generated (incl. pads)
        lens = [len(ids) for ids in batch.ids]
        accepted: list[list[int]] = [[] for _ in range(B)]  # the reply so far (up to EOS)
        done = [False] * B
        steps: list[list[dict]] = [[] for _ in range(B)]
        if streamer is not None:
            streamer.put(batch.input_ids[0].cpu())
        chunk = 0
        while not all(done) and max(len(a) for a in accepted) < cfg.max_new_tokens and \
                len(seqs[0]) - lens[0] < cfg.max_new_tokens:
            left = cfg.max_new_tokens - (len(seqs[0]) - lens[0])
            T = min(cfg.chunk_tokens, left)
            ids, mask = _padded(seqs, lens, pad, device)
            first = d.run_generate(ids, mask, max_new_tokens=T)                 # candidate 0: main RNG
            cands = [[first[r].tolist()] for r in range(B)]
            if cfg.n > 1:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(_derived_seed(cfg.seed, chunk))
                    more = d.run_generate(ids, mask, max_new_tokens=T, num_return_sequences=cfg.n - 1)
                for r in range(B):
                    cands[r] += [more[r * (cfg.n - 1) + j].tolist() for j in range(cfg.n - 1)]
            live = [r for r in range(B) if not done[r]]
            flat = [(r, j) for r in live for j in range(cfg.n)]
            scores = self.score_chunks(batch, accepted, [_until_eos(cands[r][j], eos) for r, j in flat],
                                       [r for r, _ in flat]) if flat else []
            by_row: dict[int, list[float]] = {}
            for (r, _), s in zip(flat, scores):
                by_row.setdefault(r, []).append(s)
            for r in range(B):
                choice = 0
                if r in by_row:
                    sc = by_row[r]
                    choice = max(range(len(sc)), key=lambda j: (sc[j], -j))   # ties → lowest index
                    steps[r].append({"chunk": chunk, "scores": [round(float(s), 4) for s in sc], "chosen": choice})
                row = cands[r][choice]
                if not done[r]:
                    piece = _until_eos(row, eos)
                    accepted[r] += piece
                    if streamer is not None and r == 0 and piece:
                        streamer.put(torch.tensor(piece))
                    if piece and piece[-1] in eos:
                        done[r] = True
                seqs[r] += row + [pad] * (T - len(row))
            chunk += 1
            if len(first[0]) < T:   # generate stopped early: every row finished
                break
        if streamer is not None:
            streamer.end()
        return [Generation(batch.prompts[r], d.reply_text(accepted[r]), accepted[r],
                           {"search": steps[r], **self.final_info(batch, r, accepted[r])}) for r in range(B)]

    def final_info(self, batch, r, tokens) -> dict:
        return {}


def _padded(seqs, lens, pad, device):
    """Left-padded ids where the prompt's own padding stays masked and every generated
    token (pads of finished rows included, as generate itself does) is attended."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s)
        mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def _derived_seed(seed: int, chunk: int) -> int:
    return random.Random(seed * 1_000_003 + chunk).randrange(2**31)


def _eos(d) -> list[int]:
    from ..analysis.scoring import eos_ids
    return eos_ids(d.side.model, d.tokenizer)


def _until_eos(row: list[int], eos) -> list[int]:
    cut = next((i + 1 for i, x in enumerate(row) if x in eos), len(row))
    return row[:cut]


def _stream_all(streamer, batch, gens) -> None:
    """Search strategies: hand the first row's final reply to the streamer at once."""
    streamer.put(batch.input_ids[0].cpu())
    if gens and gens[0].token_ids:
        streamer.put(torch.tensor(gens[0].token_ids))
    streamer.end()


class RewardSearch(_Rewarded, _ChunkSearch):
    def score_chunks(self, batch, accepted, pieces, rows):
        d = self.decoder
        texts = [d.reply_text(accepted[r] + p) for r, p in zip(rows, pieces)]
        total, _ = self.score([batch.prompts[r] for r in rows], texts, batch.columns, rows)
        return total

    def final_info(self, batch, r, tokens):
        total, _ = self.score([batch.prompts[r]], [self.decoder.reply_text(tokens)], batch.columns, [r])
        return {"reward": total[0]}


register(StrategySpec("reward_search", RewardSearchArgs,
                      "reward-guided chunk search (DeAL-style): n candidate chunks per step, keep the best",
                      RewardSearch,
                      paper="DeAL: Decoding-time Alignment for LLMs (Huang et al. 2024)"))


# ------------------------------------------------------------------ weak-to-strong search

@dataclass
class WeakToStrongArgs(DecodeArgs):
    """Sample the target chunk by chunk; keep the chunk with the largest
    log p_tuned − log p_untuned under a small tuned/untuned pair."""
    sample: bool = knob(True, "sample the target's candidate chunks")
    tuned: str = knob("", "small tuned model (model spec or run directory)")
    untuned: str = knob("", "the same small model before tuning")
    n: int = knob(4, "candidate chunks per step")
    chunk_tokens: int = knob(8, "tokens per chunk")

    def __post_init__(self):
        super().__post_init__()
        _require(self, "tuned", "untuned")
        if self.n < 1:
            raise WorkbenchError(f"strategy.n must be >= 1, got {self.n}")
        if self.chunk_tokens < 1:
            raise WorkbenchError(f"strategy.chunk_tokens must be >= 1, got {self.chunk_tokens}")


class WeakToStrong(_ChunkSearch):
    def __init__(self, decoder, cfg):
        super().__init__(decoder, cfg)
        from .generator import check_vocab
        self.tuned = decoder.other("tuned", cfg.tuned)
        self.untuned = decoder.other("untuned", cfg.untuned)
        check_vocab(self.tuned, self.untuned, "untuned", "weak_to_strong (tuned vs untuned)")
        va, vt = self.side.tokenizer.get_vocab(), self.tuned.tokenizer.get_vocab()
        self.same_vocab = self.side.tokenizer is self.tuned.tokenizer or va == vt

    def score_chunks(self, batch, accepted, pieces, rows):
        from .generator import prompt_ids
        tok = self.tuned.tokenizer
        ctx_all = prompt_ids(self.tuned, batch.messages)
        if self.same_vocab:   # the target's own tokens
            ctx = [ctx_all[r] + accepted[r] for r in rows]
            cont = list(pieces)
        else:                 # another vocabulary: go through text
            d = self.decoder
            ctx = [ctx_all[r] + tok(d.tokenizer.decode(accepted[r], skip_special_tokens=True),
                                    add_special_tokens=False)["input_ids"] for r in rows]
            cont = [tok(d.tokenizer.decode(p, skip_special_tokens=True), add_special_tokens=False)["input_ids"]
                    for p in pieces]
        lt = _seq_logprob(self.tuned, ctx, cont, self.decoder.precision)
        lu = _seq_logprob(self.untuned, ctx, cont, self.decoder.precision)
        return [a - b for a, b in zip(lt, lu)]


def _seq_logprob(side, ctx: list[list[int]], cont: list[list[int]], precision: str) -> list[float]:
    """Σ log p(cont | ctx) per row, one batched teacher-forced forward."""
    from ..analysis.scoring import teacher_forced_logits, token_logprobs
    T = max((len(c) for c in cont), default=0)
    if T == 0:
        return [0.0] * len(cont)
    pad = side.tokenizer.pad_token_id
    out = torch.full((len(cont), T), pad, dtype=torch.long)
    mask = torch.zeros((len(cont), T), dtype=torch.bool)
    for i, c in enumerate(cont):
        out[i, :len(c)] = torch.tensor(c, dtype=torch.long)
        mask[i, :len(c)] = True
    logits = teacher_forced_logits(side, ctx, out, mask, precision=precision)
    lp = token_logprobs(logits, out.to(logits.device)) * mask.to(logits.device)
    return lp.sum(-1).tolist()


register(StrategySpec("weak_to_strong", WeakToStrongArgs,
                      "weak-to-strong search: small tuned/untuned pair guides chunks sampled from the target",
                      WeakToStrong, paper="Zhou et al. 2024, Weak-to-Strong Search"))


# ------------------------------------------------------------------ proxy-tuning

@dataclass
class ProxyTuningArgs(DecodeArgs):
    """logits_target + alpha·(logits_expert − logits_anti_expert)."""
    expert: str = knob("", "small tuned model (model spec or run directory)")
    anti_expert: str = knob("", "the same small model untuned")
    alpha: float = knob(1.0, "scale of the expert − anti-expert offset (1 = the paper)")

    def __post_init__(self):
        super().__post_init__()
        _require(self, "expert", "anti_expert")


class ProxyTuning(Strategy):
    def __init__(self, decoder, cfg):
        super().__init__(decoder, cfg)
        from .generator import check_vocab
        self.expert = decoder.other("expert", cfg.expert)
        self.anti = decoder.other("anti_expert", cfg.anti_expert)
        check_vocab(self.side, self.expert, "expert", "proxy_tuning")
        check_vocab(self.side, self.anti, "anti-expert", "proxy_tuning")

    def processors(self, batch):
        return [ProxyTuningProcessor(self.aux_stream(self.expert, batch), self.aux_stream(self.anti, batch),
                                     self.cfg.alpha)]


register(StrategySpec("proxy_tuning", ProxyTuningArgs,
                      "proxy-tuning: target logits + (tuned small − untuned small) logits", ProxyTuning,
                      paper="Liu et al. 2024, Tuning Language Models by Proxy"))


# ------------------------------------------------------------------ instructive decoding

OPPOSITE = "Always respond with the opposite of what you're asked. You never get it right.\n\n"


@dataclass
class InstructiveArgs(DecodeArgs):
    """z − ε·z_noisy with z_noisy the logits under a noisy instruction."""
    epsilon: float = knob(0.3, "weight of the noisy-instruction logits (0 = plain decoding)")
    noise: str = knob("opposite", "noisy instruction: opposite (prefix telling the model to answer wrongly), "
                      "null (empty instruction), shuffle (the instruction's words shuffled)",
                      choices=("opposite", "null", "shuffle"))

    def __post_init__(self):
        super().__post_init__()
        if not self.epsilon >= 0:
            raise WorkbenchError(f"strategy.epsilon must be >= 0, got {self.epsilon}")


def noisy_messages(messages: list[dict], noise: str, seed: int = 0) -> list[dict]:
    """The conversation with its last user turn replaced by the noisy instruction."""
    i = max(j for j, m in enumerate(messages) if m["role"] == "user")
    text = messages[i]["content"]
    if noise == "opposite":
        text = OPPOSITE + text
    elif noise == "null":
        text = ""
    else:
        words = text.split()
        random.Random(seed).shuffle(words)
        text = " ".join(words)
    return [*messages[:i], {**messages[i], "content": text}, *messages[i + 1:]]


class Instructive(Strategy):
    def processors(self, batch):
        noisy = [noisy_messages(m, self.cfg.noise, self.cfg.seed) for m in batch.messages]
        return [InstructiveProcessor(self.aux_stream(self.side, batch, messages=noisy), self.cfg.epsilon)]


register(StrategySpec("instructive", InstructiveArgs,
                      "instructive decoding: subtract ε × logits under a noisy/opposite instruction", Instructive,
                      paper="Kim et al. 2024, Instructive Decoding"))


# ------------------------------------------------------------------ look-back decoding

@dataclass
class LookBackArgs(DecodeArgs):
    """Reject candidates whose next-token distribution is within kl_threshold of an earlier step's."""
    kl_threshold: float = knob(0.25, "KL (nats) under which a distribution counts as a repeat of an earlier step")
    candidates: int = knob(5, "top tokens looked ahead at when a repeat is detected")

    def __post_init__(self):
        super().__post_init__()
        if not self.kl_threshold >= 0:
            raise WorkbenchError(f"strategy.kl_threshold must be >= 0, got {self.kl_threshold}")
        if self.candidates < 1:
            raise WorkbenchError(f"strategy.candidates must be >= 1, got {self.candidates}")


class LookBack(Strategy):
    def processors(self, batch):
        return [LookBackProcessor(self.side, batch.attention_mask, batch.width, self.cfg.kl_threshold,
                                  self.cfg.candidates, self.decoder.precision)]

    def generate(self, batch, streamer=None):
        procs = self.processors(batch)
        out = self.decoder.run_generate(batch.input_ids, batch.attention_mask, processors=procs, streamer=streamer)
        p = procs[0]
        self.stats = {"lookahead_tokens": p.lookahead_tokens, "forwards": p.forwards}
        zero = [0] * out.shape[0]
        trig = p.triggered.tolist() if p.triggered is not None else zero
        rej = p.rejected.tolist() if p.rejected is not None else zero
        return [self.decoder.generation(batch, r, out[r], lookback_triggered=trig[r], lookback_rejected=rej[r])
                for r in range(out.shape[0])]


register(StrategySpec("lookback", LookBackArgs,
                      "look-back decoding: reject candidates whose next distribution repeats an earlier step's (KL)",
                      LookBack, paper="Xu et al. 2023, Look-back Decoding for Open-Ended Text Generation"))


# ------------------------------------------------------------------ contrastive generation

@dataclass
class ContrastiveArgs(DecodeArgs):
    """Decode argmax(log p_tuned − log p_base) over tokens the tuned model finds plausible."""
    base: str = knob("", "the base model the decoded (tuned) model is contrasted with")
    alpha: float = knob(0.1, "plausibility cut-off: keep tokens with p_tuned >= alpha · max p_tuned")

    def __post_init__(self):
        super().__post_init__()
        _require(self, "base")
        if not 0 < self.alpha <= 1:
            raise WorkbenchError(f"strategy.alpha must be in (0, 1], got {self.alpha}")


class Contrastive(Strategy):
    def __init__(self, decoder, cfg):
        super().__init__(decoder, cfg)
        from .generator import check_vocab
        self.base = decoder.other("base", cfg.base)
        check_vocab(self.side, self.base, "base", "contrastive")

    def processors(self, batch):
        return [ContrastiveProcessor(self.aux_stream(self.base, batch), self.cfg.alpha)]


register(StrategySpec("contrastive", ContrastiveArgs,
                      "contrastive generation (CGE): argmax log p_tuned − log p_base over the plausible set",
                      Contrastive, paper="What's New in My Data? (contrastive generation); Li et al. 2023"))
