"""Write a llama-architecture transformers model as a GGUF file with the `gguf` package:
its writer, its HF → GGUF tensor-name map, and its vocab readers (`BpeVocab` for the
tokens, `SpecialVocab` for merges, special ids and the chat template). The one piece of
arithmetic is llama.cpp's q/k row permutation (rotary halves interleaved), which
transformers' GGUF loader undoes (`LlamaTensorProcessor._reverse_permute_weights`)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..errors import WorkbenchError


def permute_qk(w: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py `LlamaModel.permute`."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model, tokenizer, path: Path, dtype: str = "f32") -> Path:
    import gguf

    cfg = model.config
    if cfg.model_type != "llama":
        raise WorkbenchError(f"GGUF export supports llama-architecture models, not {cfg.model_type!r}")
    n_layers, n_head = cfg.num_hidden_layers, cfg.num_attention_heads
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_head
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(str(getattr(cfg, "_name_or_path", "") or path.stem))
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(float(theta))
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
    _add_vocab(w, tokenizer, cfg.vocab_size)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for hf_name, t in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # a GGUF without output.weight is read back as tied
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise WorkbenchError(f"GGUF export: no GGUF name for tensor {hf_name!r}")
        data = t.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = permute_qk(data, n_head, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = permute_qk(data, n_head, n_kv)
        if dtype == "f16" and data.ndim == 2:  # norms (1-D) stay f32, as llama.cpp writes them
            data = data.astype(np.float16)
        w.add_tensor(name, np.ascontiguousarray(data))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _add_vocab(w, tokenizer, vocab_size: int) -> None:
    """Tokens, token types, merges, special ids and chat template from the tokenizer's
    own files (saved to a temporary folder and read with gguf's vocab readers)."""
    import gguf

    with tempfile.TemporaryDirectory() as d:
        tokenizer.save_pretrained(d)
        try:
            vocab = gguf.BpeVocab(Path(d))
        except (FileNotFoundError, ValueError) as e:
            raise WorkbenchError(f"GGUF export needs a byte-level BPE tokenizer (GPT-2 style): {e}") from None
        tokens, types = [], []
        special = set(tokenizer.all_special_tokens)
        for text, _score, ttype in vocab.all_tokens():
            s = text.decode("utf-8") if isinstance(text, bytes) else text
            tokens.append(s)
            types.append(gguf.TokenType.CONTROL if s in special else ttype)
        if len(tokens) < vocab_size:  # embedding rows with no token: padding entries, as llama.cpp writes them
            for i in range(len(tokens), vocab_size):
                tokens.append(f"[PAD{i}]")
                types.append(gguf.TokenType.UNUSED)
        if len(tokens) > vocab_size:
            raise WorkbenchError(f"GGUF export: the tokenizer has {len(tokens)} tokens but the model only "
                                 f"{vocab_size} embedding rows")
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        gguf.SpecialVocab(Path(d), load_merges=True, n_vocab=len(tokens)).add_to_gguf(w, quiet=True)
