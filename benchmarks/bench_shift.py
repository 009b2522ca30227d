"""Token-distribution shift throughput: the batched implementation vs a naive
per-position loop, side by side in one process (machines are noisy: read the ratio).

Pair: smollm2-135m-instruct (base) vs the same model with a LoRA adapter (tuned), the
base side running through the shared PEFT model with its adapter disabled — the layout a
LoRA run produces. Reports analysed tokens/s for the analysis alone (teacher forcing +
maths) and end to end (including the tuned model's greedy decoding).

    .venv/bin/python benchmarks/bench_shift.py [--prompts 16] [--max-new-tokens 64]
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def naive_analysis(base, tuned, prompt_ids, out_ids, precision_ctx):
    """What one writes first: for every output position, forward the prefix through both
    models alone and rank the token by sorting. Returns (ranks, kls)."""
    ranks, kls = [], []
    for p, out in zip(prompt_ids, out_ids):
        for t in range(len(out)):
            ids = torch.tensor([p + out[:t]])
            with torch.inference_mode(), precision_ctx():
                with base.context():
                    lb = base.model(ids).logits[0, -1].float()
                with tuned.context():
                    lt = tuned.model(ids).logits[0, -1].float()
            # same rank definition as the batched code (ties count in the token's favour)
            ranks.append(int((lb > lb[out[t]]).sum()) + 1)
            pb, pt = torch.softmax(lb, -1), torch.softmax(lt, -1)
            kls.append(float((pt * (pt.log() - pb.log())).sum()))
    return ranks, kls


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--naive-prompts", type=int, default=1, help="prompts the slow loop analyses")
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()

    from peft import LoraConfig, get_peft_model

    from workbench.analysis import token_shift
    from workbench.analysis.prompts import encode, normalise_prompts, render
    from workbench.analysis.resolve import Side
    from workbench.analysis.scoring import precision_context
    from workbench.data import load
    from workbench.models import load_model

    model, tok = load_model(args.model)
    # Default LoRA init (B = 0): same outputs as the base, same compute as a trained adapter.
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear")).eval()
    base = Side(peft, tok, args.model, adapter_off=True)
    tuned = Side(peft, tok, f"{args.model}+lora")
    prompts = list(load("instructions", format="prompt_completion", split="eval")["prompt"])[: args.prompts]
    torch.set_num_threads(torch.get_num_threads())

    results = {}
    for label, kw in [("batched", {}), ("batched+rescore_tuned", {"rescore_tuned": True})]:
        token_shift(base, tuned, prompts[:2], max_new_tokens=8, progress=False,
                    precision=args.precision)  # warm-up
        r = token_shift(base, tuned, prompts, max_new_tokens=args.max_new_tokens,
                        batch_size=args.batch_size, progress=False, precision=args.precision, **kw)
        tps = r.tokens_per_s
        print(f"{label}: {r.n_tokens} tokens, analysis {r.timings['analysis_s']:.1f}s, "
              f"decoding {r.timings['generate_s']:.1f}s", flush=True)
        results[label] = {"tokens": r.n_tokens, "analysis_s": r.timings["analysis_s"],
                          "generate_s": r.timings["generate_s"],
                          "analysis_tok_s": tps["analysis"], "end_to_end_tok_s": tps["end_to_end"],
                          **{k: round(v, 4) for k, v in r.fractions.items()}}
        if label == "batched":
            main_result = r

    # Naive loop on the same prompts and the same decoded tokens.
    msgs = normalise_prompts(prompts[: args.naive_prompts])
    p_ids = encode(tok, [render(tok, m) for m in msgs], templated=True)
    recs = main_result.records
    outs = [recs[recs.prompt_id == i]["token_id"].tolist() for i in range(len(msgs))]

    def ctx():
        return precision_context(peft, args.precision)

    t0 = time.perf_counter()
    ranks, _ = naive_analysis(base, tuned, p_ids, outs, ctx)
    naive_s = time.perf_counter() - t0
    print(f"naive loop: {sum(map(len, outs))} tokens, {naive_s:.1f}s", flush=True)
    n_naive = sum(map(len, outs))
    batched_ranks = recs[recs.prompt_id < len(msgs)]["base_rank"].tolist()
    agree = sum(a == b for a, b in zip(ranks, batched_ranks)) / max(n_naive, 1)
    results["naive_loop"] = {"tokens": n_naive, "analysis_s": naive_s,
                             "analysis_tok_s": n_naive / naive_s, "rank_agreement_with_batched": agree}
    results["speedup_analysis_batched_vs_naive"] = (results["batched"]["analysis_tok_s"]
                                                    / results["naive_loop"]["analysis_tok_s"])
    results["setup"] = {"model": args.model, "prompts": len(prompts), "max_new_tokens": args.max_new_tokens,
                        "batch_size": args.batch_size, "precision": args.precision,
                        "threads": torch.get_num_threads()}

    print(f"{'variant':24} {'tokens':>6} {'analysis tok/s':>15} {'end-to-end tok/s':>17}")
    for label in ("batched", "batched+rescore_tuned", "naive_loop"):
        x = results[label]
        print(f"{label:24} {x['tokens']:6d} {x['analysis_tok_s']:15.0f} "
              f"{x.get('end_to_end_tok_s', float('nan')):17.0f}")
    print(f"batched vs naive (analysis): {results['speedup_analysis_batched_vs_naive']:.1f}x; "
          f"rank agreement {agree:.1%}")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
