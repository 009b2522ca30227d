"""S3FT (Selective Self-to-Supervised Fine-Tuning, Gupta et al. 2025) on verifiable tasks.
Before training, each row's target is chosen in the paper's three tiers:
1. the starting model answers the prompt (greedy); if the task checker says its answer is
   right, the model's own response is the target;
2. otherwise (with `paraphrase`, the default) the model is shown the prompt and the gold
   solution and asked to restate the solution in its own words; if the checker says the
   paraphrase still reaches the gold answer (the judge of equivalence on verifiable
   tasks), the paraphrase is the target;
3. otherwise the gold solution is.
Training is then plain SFT on those targets, so the model is pulled less far from its own
distribution. Logged: `s3ft_own_share`, `s3ft_paraphrase_share`."""
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
    paraphrase: bool = field(default=True, metadata={
        "help": "the paper's middle tier: where the own answer is wrong, use the model's paraphrase of the "
                "gold solution if the checker says it keeps the right answer (false = own answer or gold)"})

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


PARAPHRASE_PROMPT = ("{question}\n\nHere is a correct solution:\n{solution}\n\n"
                     "Rewrite this solution in your own words. Keep the same final answer and end with "
                     "'Answer: <final answer>'.")


def _gold_text(row) -> str:
    return row.get("solution") or str(row["answer"])


def paraphrase_prompts(rows: list[dict]) -> list:
    """Conversational prompts asking the model to restate each row's gold solution: the
    row's own conversation (system prompt kept) with its last user turn wrapped."""
    out = []
    for r in rows:
        conv = [dict(m) for m in r["prompt"]] if isinstance(r["prompt"], list) else \
            [{"role": "user", "content": str(r["prompt"])}]
        last = max(i for i, m in enumerate(conv) if m.get("role") == "user")
        conv[last]["content"] = PARAPHRASE_PROMPT.format(question=conv[last]["content"], solution=_gold_text(r))
        out.append(conv)
    return out


def choose_tiers(rows: list[dict], responses: list[str], paraphrases: list[str | None] | None = None,
                 min_score: float = 1.0):
    """(prompt/completion rows, the tier of each: "own" | "paraphrase" | "gold"). The own
    response where the checker scores it ≥ min_score; else the paraphrase where it does;
    else the gold solution (or the bare answer). A paraphrase of None is skipped."""
    from ..data.tasks import check

    paraphrases = paraphrases or [None] * len(rows)
    out, tiers = [], []
    for row, response, para in zip(rows, responses, paraphrases):
        task = row.get("task") or "custom"
        if check(task, response, row["answer"]) >= min_score:
            target, tier = response.strip(), "own"
        elif para is not None and check(task, para, row["answer"]) >= min_score:
            target, tier = para.strip(), "paraphrase"
        else:
            target, tier = _gold_text(row), "gold"
        out.append({"prompt": row["prompt"], "completion": [{"role": "assistant", "content": target}]})
        tiers.append(tier)
    return out, tiers


def choose_targets(rows: list[dict], responses: list[str], min_score: float = 1.0):
    """(prompt/completion rows, which used the model's own response): tiers 1 and 3 only."""
    out, tiers = choose_tiers(rows, responses, None, min_score)
    return out, [t == "own" for t in tiers]


def _gold(ds):
    from datasets import Dataset

    rows, _ = choose_targets(list(ds), [""] * len(ds))  # an empty response is never right
    return Dataset.from_list(rows)


class S3FTTrainer(SFTTrainer):
    """SFTTrainer that reports the shares of own-answer and paraphrase targets with every train log."""

    def __init__(self, *args, own_share: float, paraphrase_share: float = 0.0, **kw):
        super().__init__(*args, **kw)
        self.own_share = own_share
        self.paraphrase_share = paraphrase_share

    def log(self, logs, start_time=None):
        if "loss" in logs:
            logs["s3ft_own_share"] = self.own_share
            logs["s3ft_paraphrase_share"] = self.paraphrase_share
        super().log(logs, start_time)


def build_s3ft_trainer(ctx):
    from datasets import Dataset

    m = ctx.method_config
    rows = list(ctx.train_dataset)
    if not rows or "answer" not in rows[0]:
        raise WorkbenchError("method s3ft needs verifiable rows (prompt + answer, e.g. dataset 'arithmetic')")
    responses = generate_responses(ctx.model, ctx.tokenizer, [r["prompt"] for r in rows],
                                   m.max_new_tokens, m.generation_batch_size)
    paraphrases: list[str | None] = [None] * len(rows)
    if m.paraphrase:  # tier 2, only for the rows whose own answer is wrong
        _, tiers = choose_tiers(rows, responses, None, m.min_score)
        wrong = [i for i, t in enumerate(tiers) if t != "own"]
        generated = generate_responses(ctx.model, ctx.tokenizer, paraphrase_prompts([rows[i] for i in wrong]),
                                       m.max_new_tokens, m.generation_batch_size) if wrong else []
        for i, text in zip(wrong, generated):
            paraphrases[i] = text
    targets, tiers = choose_tiers(rows, responses, paraphrases, m.min_score)
    ctx.eval_dataset = _gold(ctx.eval_dataset) if ctx.eval_dataset is not None else None
    return make_trainer(S3FTTrainer, ctx, sft_args(ctx), train_dataset=Dataset.from_list(targets),
                        own_share=round(tiers.count("own") / len(tiers), 4),
                        paraphrase_share=round(tiers.count("paraphrase") / len(tiers), 4))


register(MethodSpec(
    name="s3ft", config_cls=S3FTArgs, data_format="verifiable",
    summary="S3FT: own answer where the checker says right, else its paraphrase of gold if still right, else gold",
    build_trainer=build_s3ft_trainer, family="sft"))
