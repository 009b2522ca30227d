"""Decoding speed of every strategy against plain `model.generate` on the same prompts,
side by side in one process (machines are noisy: read the ratios).

For each strategy: generated tokens/s, time relative to plain model.generate, the forward
work it needs per generated token relative to plain greedy decoding ("forward-equivalents":
batch rows × model forwards, counting an expert/base/noisy stream as one more), and the
overhead = time ratio ÷ forward-equivalents (1.0: costs exactly its extra forwards; below
1: batching absorbs some). Threads: OMP/torch set to 1 (one process, one core).

    .venv/bin/python benchmarks/bench_decoding.py [--model smollm2-135m-instruct] [--prompts 8]
        [--max-new-tokens 32] [--out benchmarks/results/decoding.md]
"""
from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(1)


def timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "decoding.md"))
    args = ap.parse_args()

    import transformers

    from workbench.analysis.scoring import eos_ids, precision_context
    from workbench.decoding import Decoder, load_side
    from workbench.decoding.generator import load_prompts

    transformers.utils.logging.set_verbosity_error()
    msgs, _ = load_prompts("instructions", max_prompts=args.prompts)
    side = load_side(args.model)
    T, m = args.max_new_tokens, args.model
    # min_new_tokens = max: every strategy decodes exactly T tokens per row (fair tokens/s)
    common = {"max_new_tokens": T}

    # plain model.generate, no workbench code in the loop
    d0 = Decoder(m, "plain", common, precision=args.precision)
    batch = d0.batch(msgs)
    model, tok = side.model, side.tokenizer

    def raw():
        with torch.inference_mode(), precision_context(model, args.precision):
            return model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, do_sample=False,
                                  max_new_tokens=T, min_new_tokens=T, pad_token_id=tok.pad_token_id,
                                  eos_token_id=eos_ids(model, tok), temperature=None, top_p=None, top_k=None)
    raw_s, _ = timed(raw, args.repeats)
    rows = [("model.generate (greedy)", raw_s, len(msgs) * T, 1.0, "")]

    n, chunk = 4, 8
    cases = [
        ("plain", {}, 1.0, "greedy through Decoder"),
        ("plain", {"sample": True, "top_p": 0.9}, 1.0, "sampling, top-p 0.9"),
        ("urial", {}, 1.0, "same forwards; ~600-token prompt"),
        ("best_of_n", {"n": n, "reward": "length"}, float(n), f"n={n}: {n}× rows"),
        ("reward_search", {"n": n, "chunk_tokens": chunk, "reward": "length"}, float(n),
         f"n={n}, chunk {chunk}: {n}× rows, prefix re-encoded per chunk"),
        ("weak_to_strong", {"n": n, "chunk_tokens": chunk, "tuned": m, "untuned": m}, 3.0 * n,
         f"n={n}, chunk {chunk}; pair = the target itself: n sampled + 2·n teacher-forced rows per chunk"),
        ("proxy_tuning", {"expert": m, "anti_expert": m}, 3.0, "expert + anti-expert streams (same size here)"),
        ("instructive", {"epsilon": 0.3}, 2.0, "one noisy-instruction stream"),
        ("contrastive", {"base": m}, 2.0, "one base stream"),
        ("lookback", {"kl_threshold": 0.25}, None, "1 + look-ahead of 5 candidates where triggered (no cache)"),
    ]
    for name, knobs, fe, note in cases:
        d = Decoder(m, name, {**common, **knobs}, precision=args.precision)
        secs, gens = timed(lambda: d.generate(msgs, batch_size=len(msgs)), args.repeats)
        toks = sum(len(g.token_ids) for g in gens)
        if name == "lookback":
            trig = sum(g.info.get("lookback_triggered", 0) for g in gens)
            # a triggered step re-runs the whole sequence (no cache) for each candidate
            fe = 1.0 + d.strategy.stats["lookahead_tokens"] / max(toks, 1)
            note += f"; triggered at {trig}/{toks} row-steps"
        label = name + (" (sample)" if knobs.get("sample") else "")
        rows.append((label, secs, toks, fe, note))

    lines = [
        "# Decoding strategies vs plain model.generate",
        "",
        f"`{Path(__file__).name}` on {m}, {len(msgs)} prompts from `instructions` (eval), up to {T} new tokens, "
        f"one batch, precision {args.precision}, 1 thread, best of {args.repeats}; "
        f"{platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}.",
        "",
        "Forward-equivalents: token-forwards a strategy needs per generated token relative to plain greedy "
        "(rows × tokens pushed through a model, prompts aside); overhead = (time ÷ plain time) ÷ forward-equivalents. "
        "Strategies stop at EOS, "
        "so tokens/s is the fair rate; the raw `model.generate` row is forced to decode all tokens.",
        "",
        "| strategy | seconds | tokens | tokens/s | time vs model.generate | forward-equiv. | overhead | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    base_tps = rows[0][2] / rows[0][1]
    for label, secs, toks, fe, note in rows:
        tps = toks / secs
        ratio = base_tps / tps          # time per token relative to model.generate
        lines.append(f"| {label} | {secs:.2f} | {toks} | {tps:.1f} | {ratio:.2f}× | {fe:.2f} | {ratio / fe:.2f} "
                     f"| {note} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
