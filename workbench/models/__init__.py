from .device import check_device, pick_device, use_bf16
from .registry import BUILTIN, ModelInfo, ensure_cached, list_models, load_model, load_tokenizer, resolve

__all__ = ["BUILTIN", "ModelInfo", "check_device", "ensure_cached", "list_models", "load_model", "load_tokenizer",
           "pick_device", "resolve", "use_bf16"]
