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

    @torch.no_grad()
    def __call__(self, model, step: int) -> list[dict]:
        if not self.prompts:
            return []
        was_training = model.training
        model.eval()
        tok, out = self.tokenizer, []
        for i, prompt in enumerate(self.prompts):
            if isinstance(prompt, list):
                enc = tok.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True)
                shown = prompt[-1]["content"]
            else:
                enc, shown = tok(prompt, return_tensors="pt"), prompt
            enc = {k: v.to(model.device) for k, v in enc.items()}
            ids = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
            text = tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out.append({"prompt_id": i, "prompt": shown, "completion": text})
        if was_training:
            model.train()
        return out
