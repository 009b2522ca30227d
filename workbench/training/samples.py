"""Greedy generations on a few fixed prompts at each evaluation and at the end, so a run
shows how its answers changed without any external tracker."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Sampler:
    tokenizer: object
    prompts: list            # chat message lists or plain strings
    max_new_tokens: int

    def encode(self) -> tuple[dict, list[str]]:
        """All prompts as one left-padded batch, and the text shown for each."""
        tok, rows, shown = self.tokenizer, [], []
        for prompt in self.prompts:
            if isinstance(prompt, list):
                ids = tok.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"]
                shown.append(prompt[-1]["content"])
            else:
                ids = tok(prompt)["input_ids"]
                shown.append(prompt)
            rows.append({"input_ids": ids})
        return tok.pad(rows, padding_side="left", return_tensors="pt"), shown

    @torch.no_grad()
    def __call__(self, model, step: int) -> list[dict]:
        if not self.prompts:
            return []
        was_training = model.training
        model.eval()
        # One batch, not one prompt at a time: a decode step on CPU is bound by reading the
        # weights, so n prompts side by side cost about what one does.
        enc, shown = self.encode()
        enc = {k: v.to(model.device) for k, v in enc.items()}
        ids = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                             pad_token_id=self.tokenizer.pad_token_id)
        width = enc["input_ids"].shape[1]
        out = [{"prompt_id": i, "prompt": text,
                "completion": self.tokenizer.decode(ids[i, width:], skip_special_tokens=True)}
               for i, text in enumerate(shown)]
        if was_training:
            model.train()
        return out
