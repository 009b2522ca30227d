"""`workbench export RUN --out DIR [--format safetensors|gguf]`: a run as a model plain
transformers (or a GGUF reader) loads, checked by reloading it before it is kept."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "export", help="export a run as merged safetensors or a GGUF file",
        description="safetensors: the adapter merged into its base (merge_and_unload), saved with the tokenizer "
                    "and chat template. gguf: llama-architecture models as an F32/F16 GGUF file. The export "
                    "is reloaded with plain transformers and its logits compared with the run's before it is "
                    "kept; export.json records the difference measured.")
    p.add_argument("run", metavar="RUN", help="run directory (trained or merged)")
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.add_argument("--format", default="safetensors", choices=["safetensors", "gguf"])
    p.add_argument("--dtype", default="f32", choices=["f32", "f16"], help="GGUF tensor type (default f32)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="largest |logit difference| accepted on reload (default 5e-4; 5e-2 for GGUF f16)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..merging.export import export_run

    r = export_run(args.run, args.out, args.format, dtype=args.dtype, tolerance=args.tolerance)
    print(f"exported {args.run} as {r.format} → {r.file} (reloaded: max |Δlogit| {r.max_abs_diff:.2e}, "
          f"tolerance {r.tolerance:g})")
    return 0
