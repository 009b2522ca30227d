"""`LogitSFTTrainer`: a TRL SFTTrainer whose loss needs the full next-token distribution
(KL to a reference, per-sample weights). It keeps TRL's batching, logging, checkpointing
and metrics (entropy, mean_token_accuracy, num_tokens); subclasses implement only
`logit_loss`. The formulas are in `workbench.methods.losses.sft`."""
from __future__ import annotations

import torch
from trl import SFTTrainer

from ..losses import sft as losses


class LogitSFTTrainer(SFTTrainer):
    """Computes log-probabilities from the full logits and hands them to `logit_loss`."""

    def logit_loss(self, model, model_inputs, logp, token_logp, mask, denom):
        """Return (loss, {metric: float}). Subclasses override."""
        raise NotImplementedError

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        inputs["use_cache"] = False
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**model_inputs)
        logp, token_logp, mask = losses.token_log_probs(outputs.logits, inputs["labels"])
        denom = num_items_in_batch if mode == "train" else None
        loss, metrics = self.logit_loss(model, model_inputs, logp, token_logp, mask, denom)

        # The bookkeeping TRL's own compute_loss does (its metrics feed the same records).
        with torch.no_grad():
            n = mask.sum().clamp(min=1)
            entropy = -(logp.exp() * logp).sum(-1)
            top1 = logp.argmax(-1) == inputs["labels"][:, 1:].clamp(min=0)
            self._metrics[mode]["entropy"].append(((entropy * mask).sum() / n).item())
            self._metrics[mode]["mean_token_accuracy"].append(((top1 & mask).sum() / n).item())
        for key, value in metrics.items():
            self._metrics[mode][key].append(value)
        if mode == "train":
            self._total_train_tokens += int(inputs["attention_mask"].sum().item())
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss
