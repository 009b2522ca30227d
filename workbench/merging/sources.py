"""The runs a merge reads, and every check that they can be combined — made before any
weights are loaded or anything is written: each is a finished run; all are LoRA adapters
or all full weights; one base model; one tokenizer; one architecture."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import WorkbenchError
from ..runs.store import FINAL, final_weights, open_run, read_json_object

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# config.json keys that must agree for two full models to be merged entry by entry.
_SHAPE_KEYS = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
               "num_attention_heads", "num_key_value_heads", "tie_word_embeddings")


@dataclass
class Source:
    path: Path
    config: dict              # the run's config.json
    kind: str                 # "lora" | "full"
    adapter: dict | None      # adapter_config.json of a LoRA run

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def final(self) -> Path:
        return self.path / FINAL

    @property
    def base(self) -> str:
        return str(self.config.get("model"))

    @property
    def rank(self) -> int | None:
        if not self.adapter:
            return None
        return max([int(self.adapter.get("r") or 0), *map(int, (self.adapter.get("rank_pattern") or {}).values())])

    def describe(self) -> dict:
        """What config.json of the merged run records about this source."""
        c = self.config
        return {"run": str(self.path.resolve()), "name": self.name, "method": c.get("method"),
                "dataset": c.get("dataset"), "peft": c.get("peft"), "model": c.get("model"),
                "max_steps": c.get("max_steps"), "kind": self.kind, "rank": self.rank}


def read_source(path) -> Source:
    info = open_run(Path(str(path)).expanduser())
    final = final_weights(info)
    if not info.config.get("model"):
        raise WorkbenchError(f"run {info.path}: config.json names no base model (key 'model')")
    if (final / "adapter_config.json").is_file():
        adapter = read_json_object(final / "adapter_config.json", "adapter configuration")
        kind = "lora"
        peft_type = str(adapter.get("peft_type", "")).upper()
        if peft_type != "LORA":
            raise WorkbenchError(f"run {info.path} holds a {peft_type or 'unknown'} adapter; PEFT's "
                                 "add_weighted_adapter merges LoRA adapters only")
        for flag, what in (("use_dora", "DoRA"), ("use_rslora", "rsLoRA")):
            if adapter.get(flag):
                raise WorkbenchError(f"run {info.path} is a {what} adapter; add_weighted_adapter cannot merge "
                                     f"{what} adapters faithfully (merge plain LoRA runs, or full fine-tunes)")
        if not any(final.glob("adapter_model.*")):
            raise WorkbenchError(f"run {info.path}: {FINAL}/ has adapter_config.json but no adapter weights")
    elif (final / "config.json").is_file():
        adapter, kind = None, "full"
    else:
        raise WorkbenchError(f"run {info.path}: {FINAL}/ holds neither a LoRA adapter nor full weights")
    return Source(info.path, info.config, kind, adapter)


def _tokenizer_dir(src: Source) -> Path | None:
    return src.final if any((src.final / f).is_file() for f in _TOKENIZER_FILES) else None


def _vocab(src: Source):
    d = _tokenizer_dir(src)
    if d is None:
        return None
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(d)).get_vocab()


def _tokenizer_digest(src: Source) -> str | None:
    """A hash of the run's tokenizer.json: equal files need no closer look."""
    import hashlib

    f = src.final / "tokenizer.json"
    return hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None


def tokenizer_files(src: Source) -> list[Path]:
    """The tokenizer files a run saved beside its weights (copied into a merged run's final/)."""
    names = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
             "vocab.json", "merges.txt", "added_tokens.json", "tokenizer.model", "generation_config.json")
    return [src.final / n for n in names if (src.final / n).is_file()]


def _same(a, b) -> bool:
    return a == b or Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def check_sources(sources: list[Source], base: str | None = None) -> str:
    """One line naming the two runs and why they cannot be merged; otherwise the base
    model name (the runs' common `model`, or `base` when given and compatible)."""
    if len(sources) < 2:
        raise WorkbenchError(f"a merge needs at least two runs, got {len(sources)} (to merge a run with "
                             "itself, name it twice)")
    first = sources[0]
    for other in sources[1:]:
        pair = f"runs {first.path} and {other.path}"
        if other.kind != first.kind:
            kinds = {"lora": "a LoRA adapter", "full": "full weights"}
            raise WorkbenchError(f"{pair} cannot be merged: {first.name} is {kinds[first.kind]}, {other.name} is "
                                 f"{kinds[other.kind]} (merge adapters with adapters, full runs with full runs)")
        if not _same(other.base, first.base):
            raise WorkbenchError(f"{pair} cannot be merged: they were tuned from different base models "
                                 f"({first.base!r} vs {other.base!r}); task vectors only add up over one base")
        if first.kind == "full":
            ca = read_json_object(first.final / "config.json", "model configuration")
            cb = read_json_object(other.final / "config.json", "model configuration")
            diff = [k for k in _SHAPE_KEYS if ca.get(k) != cb.get(k)]
            if diff:
                k = diff[0]
                raise WorkbenchError(f"{pair} cannot be merged: different architectures ({k} {ca.get(k)!r} vs "
                                     f"{cb.get(k)!r})")
    digests = {s.path: _tokenizer_digest(s) for s in sources}
    saved = [s for s in sources if _tokenizer_dir(s) is not None]
    for s in saved[1:]:
        s0 = saved[0]
        if digests[s.path] is not None and digests[s.path] == digests[s0.path]:
            continue
        v0, v = _vocab(s0), _vocab(s)
        if v != v0:
            raise WorkbenchError(f"runs {s0.path} and {s.path} cannot be merged: they use different tokenizers "
                                 f"({len(v0)} vs {len(v)} tokens, or the ids differ)")
    if base is None or _same(base, first.base):
        return first.base
    if first.kind == "lora":
        raise WorkbenchError(f"--base {base!r} differs from the base the adapters were trained on "
                             f"({first.base!r}, run {first.path}); a LoRA adapter only applies to its own base")
    return base
