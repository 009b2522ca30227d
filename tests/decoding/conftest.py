"""Tiny models for the decoding tests (loaded once per session)."""
import copy

import pytest
import torch

from workbench.models import load_model


@pytest.fixture(scope="session")
def tiny():
    model, tok = load_model("tiny-llama")
    return model.eval(), tok


@pytest.fixture(scope="session")
def forced(tiny):
    """forced(token_id, boost): a copy of the tiny model whose head adds `boost` to one
    token's logit, so greedy decoding repeats that token. Real weights, one edited logit."""
    cache = {}

    def make(token_id: int, boost: float = 12.0):
        if (token_id, boost) not in cache:
            model, tok = tiny
            m = copy.deepcopy(model)
            old = m.lm_head
            head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
            with torch.no_grad():
                head.weight.copy_(old.weight)
                head.bias.zero_()
                head.bias[token_id] = boost
            m.lm_head = head
            cache[(token_id, boost)] = (m.eval(), tok)
        return cache[(token_id, boost)]
    return make


@pytest.fixture(scope="session")
def other_vocab():
    """A model + tokenizer with a different (4-word) vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "hello": 2, "world": 3}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>")
    model = LlamaForCausalLM(LlamaConfig(vocab_size=4, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2))
    return model.eval(), tok
