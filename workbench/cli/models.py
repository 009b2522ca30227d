"""`workbench models`: the built-in models, their size, kind and cache state; `--prepare`
converts them into the cache now (`make setup` does), instead of on first use."""
import time

from ..errors import UnknownNameError


def add_parser(sub):
    p = sub.add_parser("models", help="list built-in models (size, base/instruct, cached)")
    p.add_argument("--prepare", nargs="*", metavar="NAME", default=None,
                   help="convert these built-in models (default: all) into the cache now; "
                        "otherwise each is converted on its first use")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models import BUILTIN, ensure_cached, list_models  # torch: not for the other commands' parser

    if args.prepare is not None:
        names = args.prepare or list(BUILTIN)
        for name in names:
            if name not in BUILTIN:
                raise UnknownNameError("built-in model", name, list(BUILTIN))
        for name in names:
            if BUILTIN[name].cached:
                print(f"{name}: cached")
                continue
            t = time.perf_counter()
            ensure_cached(name)
            print(f"{name}: converted in {time.perf_counter() - t:.0f} s")
        return 0
    print(f"{'name':24} {'kind':9} {'params':7} {'cached':7} source")
    for m in list_models():
        print(f"{m.name:24} {m.kind:9} {m.params:7} {'yes' if m.cached else 'no':7} {m.source}")
    print("Any Hugging Face hub id (org/name), local model directory or .gguf file also works.")
    return 0
