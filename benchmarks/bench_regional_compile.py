"""Would `torch.compile` close the gap to the roofline? One decoder block's norm + LoRA MLP +
residual of SmolLM2 (rank-8 LoRA on every linear, bf16 autocast, forward + backward over one
packed row of `--tokens` tokens), eager against `torch.compile(dynamic=True)`, in one process.
The elementwise work this region holds (RMSNorm, SiLU × up, LoRA's scaling, casts) is what
inductor fuses; it is ~45% of a packed SFT+LoRA step (profile_step.py --packing).

    OMP_NUM_THREADS=2 python benchmarks/bench_regional_compile.py [--tokens 1030 --repeats 8]

Prints the first call (compile included) and the median of the others for each variant.
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tokens", type=int, default=1030)
    ap.add_argument("--repeats", type=int, default=8)
    args = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from workbench.models import load_model

    torch.manual_seed(0)
    model, _ = load_model(args.model, device="cpu")
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    layer = model.get_base_model().model.layers[0]
    x = torch.randn(1, args.tokens, model.config.hidden_size, requires_grad=True)

    def block(h):
        return h + layer.mlp(layer.post_attention_layernorm(h))

    def times(fn) -> list[float]:
        out = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16):
                y = fn(x)
            y.float().pow(2).mean().backward()
            out.append(time.perf_counter() - t0)
        return out

    rows = {}
    for name, fn in (("eager", block), ("compiled", torch.compile(block, dynamic=True)), ("eager again", block)):
        t = times(fn)
        rows[name] = t
        print(f"{name:12s} first {t[0]:.3f} s, then median {statistics.median(t[1:]) * 1e3:.1f} ms", flush=True)
    eager = statistics.median(rows["eager"][1:] + rows["eager again"][1:])
    compiled = statistics.median(rows["compiled"][1:])
    payback = rows["compiled"][0] / max(eager - compiled, 1e-9)
    print(f"compiled ÷ eager (steady state): {eager / compiled:.2f}× faster; "
          f"compile paid back after {payback:.0f} calls of this block")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
