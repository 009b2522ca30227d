"""TRL DPOTrainer subclasses for objectives TRL lacks. They keep TRL's tokenisation,
batching, logging, checkpointing and reference handling and replace only the loss:

- PairObjectiveTrainer: preference pairs, batches laid out as TRL's [chosen; rejected];
  subclasses implement `pair_loss`.
- ListObjectiveTrainer: ranked lists of K responses per prompt (`ranked` data:
  prompt, responses, scores); subclasses implement `list_loss` on (B, K) tensors.

A subclass says whether its loss needs the reference with the class attribute
`needs_reference`, and reads its method's knobs from `self.method_config` (passed to the
constructor by `build_objective_trainer`). Both log logps/*, rewards/* where a reference
exists, and a per-batch ranking accuracy (the policy's own total log-likelihood orders
the pair/list as the labels do)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from trl import DPOConfig, DPOTrainer
from trl.models.utils import disable_gradient_checkpointing

from ...errors import WorkbenchError
from .._preference import adapter_reference, attach_probes, common_args, frozen_copy, trains_adapter
from ..preference_metrics import PreferenceProbeMixin, encode


def sequence_logps(trainer, model, inputs, *, reference: bool):
    """Per-sequence total log-prob, token count, and (optionally) the reference's, from
    a batch with input_ids / attention_mask / completion_mask (TRL's fused LM head).
    Under PEFT the reference is TRL's: the "ref" adapter when TRL made one (a PeftModel
    handed in, e.g. by the on-policy loop), else the adapter disabled."""
    kwargs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "use_cache": False}
    mask = inputs["completion_mask"]
    labels = inputs["input_ids"].masked_fill(mask == 0, -100)
    shift_mask = mask[..., 1:]
    seq_len = shift_mask.size(1)
    out = model(**kwargs, labels=labels, fused_lm_head=True)
    per_token = out.log_probs[:, -seq_len:]
    logps, lengths = per_token.sum(1), shift_mask.sum(1).clamp(min=1)
    ref = None
    if reference:
        with torch.no_grad(), disable_gradient_checkpointing(trainer.model, trainer.args.gradient_checkpointing_kwargs):
            if trainer.ref_model is None:
                with adapter_reference(trainer.accelerator.unwrap_model(trainer.model)):
                    ref_out = trainer.model(**kwargs, labels=labels, fused_lm_head=True)
            else:
                ref_out = trainer.ref_model(**kwargs, labels=labels, fused_lm_head=True)
        ref = ref_out.log_probs[:, -seq_len:].sum(1)
    if trainer.model.training:
        trainer._total_train_tokens += int(inputs["attention_mask"].sum().item())
    return logps, lengths, ref, per_token, shift_mask


class ObjectiveTrainer(PreferenceProbeMixin, DPOTrainer):
    """Shared by the pair and list bases: the method's knobs, whether the loss needs the
    reference, metric logging."""

    needs_reference: ClassVar[bool] = False
    listwise: ClassVar[bool] = False

    def __init__(self, *args, method_config: Any = None, **kwargs):
        self.method_config = method_config
        super().__init__(*args, **kwargs)

    def _log_objective(self, mode: str, **values: float) -> None:
        for k, v in values.items():
            self._metrics[mode][k].append(float(v))
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]


class PairObjectiveTrainer(ObjectiveTrainer):
    """Pairwise objective on TRL's [chosen; rejected] batches; subclasses implement `pair_loss`."""

    def pair_loss(self, chosen, rejected, chosen_len, rejected_len, ref_chosen, ref_rejected, chosen_nll):
        """Sequence log-probs (B,) of chosen/rejected, their token counts, the reference's
        (None without one) and the chosen response's per-token NLL → scalar loss."""
        raise NotImplementedError

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        logps, lengths, ref, _, _ = sequence_logps(self, model, inputs, reference=self.needs_reference)
        chosen, rejected = logps.chunk(2)
        c_len, r_len = lengths.chunk(2)
        chosen_nll = -chosen / c_len
        ref_c, ref_r = ref.chunk(2) if ref is not None else (None, None)
        loss = self.pair_loss(chosen, rejected, c_len, r_len, ref_c, ref_r, chosen_nll)
        values = {"logps/chosen": chosen.detach().mean(), "logps/rejected": rejected.detach().mean(),
                  "ranking_accuracy_batch": (chosen > rejected).float().mean()}
        if ref is not None:
            rc, rr = self.beta * (chosen - ref_c).detach(), self.beta * (rejected - ref_r).detach()
            values.update({"rewards/chosen": rc.mean(), "rewards/rejected": rr.mean(),
                           "rewards/margins": (rc - rr).mean(), "rewards/accuracies": (rc > rr).float().mean()})
        self._log_objective(mode, **{k: v.item() for k, v in values.items()})
        return (loss, {}) if return_outputs else loss


@dataclass
class ListCollator:
    """Ranked lists → one flat batch of prompt+response sequences (right padded) plus
    (B, K) `scores`/`valid` and each sequence's (list, slot) position."""
    pad_token_id: int
    max_length: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        k_max = max(len(e["responses_ids"]) for e in examples)
        seqs, masks, where = [], [], []
        scores = torch.zeros(len(examples), k_max)
        valid = torch.zeros(len(examples), k_max, dtype=torch.bool)
        for b, e in enumerate(examples):
            for k, resp in enumerate(e["responses_ids"]):
                ids, mask = e["prompt_ids"] + resp, [0] * len(e["prompt_ids"]) + [1] * len(resp)
                if self.max_length:
                    ids, mask = ids[:self.max_length], mask[:self.max_length]
                seqs.append(ids)
                masks.append(mask)
                where.append((b, k))
                scores[b, k] = float(e["scores"][k])
                valid[b, k] = True
        width = max(len(s) for s in seqs)
        return {
            "input_ids": torch.tensor([s + [self.pad_token_id] * (width - len(s)) for s in seqs]),
            "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs]),
            "completion_mask": torch.tensor([m + [0] * (width - len(m)) for m in masks]),
            "scores": scores, "valid": valid,
            "list_index": torch.tensor([w[0] for w in where]), "slot": torch.tensor([w[1] for w in where]),
        }


class ListObjectiveTrainer(ObjectiveTrainer):
    """Listwise objective on ranked data (K responses per prompt, scores); subclasses
    implement `list_loss`. Batches come from `ListCollator`."""

    listwise: ClassVar[bool] = True

    def list_loss(self, logps, lengths, ref, scores, valid):
        """(B, K) tensors → scalar loss. ref is None without a reference."""
        raise NotImplementedError

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if "prompt_ids" in dataset.column_names:
            return dataset
        tok = processing_class

        def tokenize(row):
            pairs = [encode(tok, row["prompt"], r) for r in row["responses"]]
            return {"prompt_ids": pairs[0][0], "responses_ids": [r for _, r in pairs],
                    "scores": [float(s) for s in row["scores"]]}

        dataset = dataset.map(tokenize, desc=f"Tokenizing {dataset_name} lists")
        keep = dataset.filter(lambda r: len(r["responses_ids"]) >= 2 and len(set(r["scores"])) >= 2
                              and (args.max_length is None or len(r["prompt_ids"]) < args.max_length))
        if len(keep) == 0:
            raise WorkbenchError(f"{dataset_name} data: no list has two responses with different scores")
        return keep

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["prompt_ids", "responses_ids", "scores"]

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        flat, lengths_flat, ref_flat, _, _ = sequence_logps(self, model, inputs, reference=self.needs_reference)
        scores, valid = inputs["scores"], inputs["valid"]
        idx = (inputs["list_index"], inputs["slot"])

        def grid(values, fill=0.0):
            out = torch.full(scores.shape, fill, dtype=values.dtype, device=values.device)
            return out.index_put(idx, values)

        logps, lengths = grid(flat), grid(lengths_flat.to(flat.dtype), 1.0)
        ref = grid(ref_flat) if ref_flat is not None else None
        loss = self.list_loss(logps, lengths, ref, scores, valid)
        better = (scores[:, :, None] > scores[:, None, :]) & valid[:, :, None] & valid[:, None, :]
        lp = logps.detach()
        agree = ((lp[:, :, None] > lp[:, None, :]) & better).sum() / better.sum().clamp(min=1)
        values = {"ranking_accuracy_batch": agree.item(), "logps/mean": lp[valid].mean().item()}
        top = scores.masked_fill(~valid, float("-inf")).max(1, keepdim=True).values
        bottom = scores.masked_fill(~valid, float("inf")).min(1, keepdim=True).values
        values["logps/chosen"] = lp[(scores == top) & valid].mean().item()   # best-scored responses
        values["logps/rejected"] = lp[(scores == bottom) & valid].mean().item()  # worst-scored
        if ref is not None:
            r = self.beta * (logps - ref).detach()
            values["rewards/chosen"] = r[(scores == top) & valid].mean().item()
            values["rewards/rejected"] = r[(scores == bottom) & valid].mean().item()
            values["rewards/margins"] = values["rewards/chosen"] - values["rewards/rejected"]
            values["rewards/accuracies"] = (((r[:, :, None] > r[:, None, :]) & better).sum()
                                            / better.sum().clamp(min=1)).item()
        self._log_objective(mode, **values)
        return (loss, {}) if return_outputs else loss


def build_objective_trainer(ctx, trainer_cls: type[ObjectiveTrainer], *, beta: float = 1.0):
    """Construct a Pair/ListObjectiveTrainer subclass with the run's shared knobs; the
    method's own knobs reach it as `method_config`."""
    tok = ctx.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    args = DPOConfig(**common_args(ctx), beta=beta)
    # Full fine-tuning: a frozen copy (TRL would otherwise try to reload the model by name);
    # for reference-free objectives it only serves the probes. PEFT (a peft_config, or a
    # PeftModel handed in): no copy, TRL's adapter reference.
    ref = None if trains_adapter(ctx) else frozen_copy(ctx.model)
    collator = ListCollator(tok.pad_token_id, ctx.config.max_length) if trainer_cls.listwise else None
    trainer = ctx.build(trainer_cls, args, ref_model=ref, data_collator=collator, method_config=ctx.method_config)
    return attach_probes(trainer, ctx, reference=ref)
