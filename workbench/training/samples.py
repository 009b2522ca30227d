"""Greedy generations on a few fixed prompts at each evaluation and at the end, so a run
shows how its answers changed without any external tracker."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..models.kv_cache import reserved_cache_kwargs


def prompt_token_ids(tokenizer, prompt) -> list[int]:
    """A prompt's token ids: a chat (list of messages) through the chat template, ready for the
    answer; plain text as it is."""
    if isinstance(prompt, list):
        return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"]
    return tokenizer(prompt)["input_ids"]


@dataclass
class Sampler:
    tokenizer: object
    prompts: list            # chat message lists or plain strings
    max_new_tokens: int
    # step -> samples already decoded for that step by someone else's generate call (`keep`)
    ready: dict = field(default_factory=dict, repr=False)

    def prompt_ids(self) -> list[list[int]]:
        """Each prompt's token ids (chat prompts through the chat template, ready for the answer)."""
        return [prompt_token_ids(self.tokenizer, p) for p in self.prompts]

    def shown(self) -> list[str]:
        """The text shown for each prompt (a chat prompt's last message)."""
        return [p[-1]["content"] if isinstance(p, list) else p for p in self.prompts]

    def encode(self) -> tuple[dict, list[str]]:
        """All prompts as one left-padded batch, and the text shown for each."""
        rows = [{"input_ids": ids} for ids in self.prompt_ids()]
        return self.tokenizer.pad(rows, padding_side="left", return_tensors="pt"), self.shown()

    def keep(self, step: int, responses: list[list[int]]) -> None:
        """Greedy answers to `prompt_ids()` (token ids, at most `max_new_tokens` each) decoded at
        `step` in another generate call — the preference probes decode them beside their own
        samples, one batch instead of two: the call at `step` returns these."""
        self.ready = {step: [{"prompt_id": i, "prompt": text,
                              "completion": self.tokenizer.decode(ids[:self.max_new_tokens], skip_special_tokens=True)}
                             for i, (text, ids) in enumerate(zip(self.shown(), responses))]}

    @torch.no_grad()
    def __call__(self, model, step: int) -> list[dict]:
        ready, self.ready = self.ready.get(step), {}
        if ready is not None or not self.prompts:
            return ready or []
        was_training = model.training
        model.eval()
        # One batch, not one prompt at a time: a decode step on CPU is bound by reading the
        # weights, so n prompts side by side cost about what one does.
        enc, shown = self.encode()
        enc = {k: v.to(model.device) for k, v in enc.items()}
        ids = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                             **reserved_cache_kwargs(model, enc["input_ids"].shape[1] + self.max_new_tokens),
                             pad_token_id=self.tokenizer.pad_token_id)
        width = enc["input_ids"].shape[1]
        out = [{"prompt_id": i, "prompt": text,
                "completion": self.tokenizer.decode(ids[i, width:], skip_special_tokens=True)}
               for i, text in enumerate(shown)]
        if was_training:
            model.train()
        return out
