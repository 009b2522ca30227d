"""torch's SDPA kernels on the CPU at fine-tuning sizes: flash against math, bf16, causal.

    python benchmarks/bench_sdpa_kernels.py

For each rows × tokens shape (9 heads of 64, SmolLM2's), the median time of forward +
backward and of the forward alone for each kernel, both kernels in this one process;
then each kernel's bf16 error against an fp64 computation (output and the query's gradient,
relative norm). `workbench/models/cpu_attention.py` picks its threshold from this table.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

KERNELS = {"flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH}


def _time(backend, rows: int, tokens: int, backward: bool, repeats: int) -> float:
    q, k, v = (torch.randn(rows, 9, tokens, 64, dtype=torch.bfloat16, requires_grad=backward) for _ in range(3))
    grad = torch.randn(rows, 9, tokens, 64, dtype=torch.bfloat16)

    def once():
        with sdpa_kernel(backend):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if backward:
            out.backward(grad)

    once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _errors(tokens: int = 128) -> dict:
    g = torch.Generator().manual_seed(0)
    q0, k0, v0, d0 = (torch.randn(4, 9, tokens, 64, generator=g, dtype=torch.float64) for _ in range(4))

    def run(backend, dtype):
        q, k, v = (t.to(dtype).detach().requires_grad_() for t in (q0, k0, v0))
        with sdpa_kernel(backend):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        out.backward(d0.to(dtype))
        return out.detach().double(), q.grad.double()

    exact_out, exact_grad = run(SDPBackend.MATH, torch.float64)
    rel = {}
    for name, backend in KERNELS.items():
        out, grad = run(backend, torch.bfloat16)
        rel[name] = ((out - exact_out).norm() / exact_out.norm()).item(), \
            ((grad - exact_grad).norm() / exact_grad.norm()).item()
    return rel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="4x32,4x96,4x160,4x224,4x320,8x96,8x192",
                    help="rows x tokens, comma-separated")
    ap.add_argument("--repeats", type=int, default=8)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16, 9 heads of 64, causal")
    print("| rows × tokens | flash fwd+bwd ms | math fwd+bwd ms | flash ÷ math | flash fwd ms | math fwd ms |")
    print("|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        rows, tokens = (int(x) for x in shape.split("x"))
        both = {n: _time(b, rows, tokens, True, args.repeats) for n, b in KERNELS.items()}
        fwd = {n: _time(b, rows, tokens, False, args.repeats) for n, b in KERNELS.items()}
        print(f"| {rows}×{tokens} | {both['flash']:.2f} | {both['math']:.2f} | {both['flash'] / both['math']:.2f} "
              f"| {fwd['flash']:.2f} | {fwd['math']:.2f} |")
    print("\nbf16 error against fp64, 4×9×128×64 (relative norm): output, query gradient")
    for name, (out, grad) in _errors().items():
        print(f"  {name:5s} {out:.4f}  {grad:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
