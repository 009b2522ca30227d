"""S3FT (Selective Self-to-Supervised Fine-Tuning) on verifiable tasks: before training,
the starting model answers every training prompt (greedy); where the task checker says
its answer is right, the model's own response becomes the target, otherwise the gold
solution does. Training is then plain SFT on those targets, so the model is pulled less
far from its own distribution."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import SFTTrainer

from ..errors import WorkbenchError
from ._sft import CommonSFTArgs, make_trainer, sft_args
from .base import MethodSpec, at_least, register


@dataclass
class S3FTArgs(CommonSFTArgs):
    max_new_tokens: int = field(default=128, metadata={
        "help": "longest self-generated response (the model's answer to each training prompt)"})
    generation_batch_size: int = field(default=8, metadata={"help": "prompts per generation batch"})
    min_score: float = field(default=1.0, metadata={
        "help": "checker score at or above which the model's own answer is used (1.0 = exactly right)"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()
        at_least(self, 1, "max_new_tokens", "generation_batch_size")


@torch.no_grad()
def generate_responses(model, tokenizer, prompts: list, max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy answers of the model to conversational prompts, in order."""
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"  # generation continues from the right edge
    out = []
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                     for p in prompts[i:i + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def choose_targets(rows: list[dict], responses: list[str], min_score: float = 1.0):
    """(prompt/completion rows, which used the model's own response). Own response where
    the checker scores it ≥ min_score, else the gold solution (or the bare answer)."""
    from ..data.tasks import check

    out, own = [], []
    for row, response in zip(rows, responses):
        ok = check(row.get("task") or "custom", response, row["answer"]) >= min_score
        target = response.strip() if ok else (row.get("solution") or str(row["answer"]))
        out.append({"prompt": row["prompt"], "completion": [{"role": "assistant", "content": target}]})
        own.append(ok)
    return out, own


def _gold(ds):
    from datasets import Dataset

    rows, _ = choose_targets(list(ds), [""] * len(ds))  # an empty response is never right
    return Dataset.from_list(rows)


class S3FTTrainer(SFTTrainer):
    """SFTTrainer that reports the share of self-generated targets with every train log."""

    def __init__(self, *args, own_share: float, **kw):
        super().__init__(*args, **kw)
        self.own_share = own_share

    def log(self, logs, start_time=None):
        if "loss" in logs:
            logs["s3ft_own_share"] = self.own_share
        super().log(logs, start_time)


def build_s3ft_trainer(ctx):
    from datasets import Dataset

    m = ctx.method_config
    rows = list(ctx.train_dataset)
    if not rows or "answer" not in rows[0]:
        raise WorkbenchError("method s3ft needs verifiable rows (prompt + answer, e.g. dataset 'arithmetic')")
    responses = generate_responses(ctx.model, ctx.tokenizer, [r["prompt"] for r in rows],
                                   m.max_new_tokens, m.generation_batch_size)
    targets, own = choose_targets(rows, responses, m.min_score)
    ctx.eval_dataset = _gold(ctx.eval_dataset) if ctx.eval_dataset is not None else None
    return make_trainer(S3FTTrainer, ctx, sft_args(ctx), train_dataset=Dataset.from_list(targets),
                        own_share=round(sum(own) / len(own), 4))


register(MethodSpec(
    name="s3ft", config_cls=S3FTArgs, data_format="verifiable",
    summary="S3FT: train on the model's own answer where the task checker says it is right, else gold",
    build_trainer=build_s3ft_trainer, family="sft"))
