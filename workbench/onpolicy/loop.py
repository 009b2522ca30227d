"""The on-policy rounds as a coordinator: sample k completions per prompt from the current
policy → score them with the reward spec → build pairs / lists / labels → train with any
preference objective (its own TRL trainer, attached to the run with a step offset) →
evaluate on held-out verifiable rows → next round from the updated policy.

Records (all through the Run, so they reach the run store and listeners):
- kind event, event "round": round, reward_mean/std, sample_accuracy, length_mean,
  prompts, prompts_kept, pairs (rows built), sample_tokens_per_s, train_steps
- kind eval: round, accuracy, eval_reward_mean, eval_length_mean (round 0 = before)
- kind sample: greedy held-out answers with their reward, each round
- kind train: the round trainer's logs on the run's step axis, tagged with the round

Each round's reference (for objectives that have one) is the policy the round starts
from, through TRL's own mechanism: under PEFT the policy is a PeftModel, so TRL copies its
adapter into a frozen "ref" adapter (same forward, same autocast as the policy); under
full fine-tuning the objective's builder takes a frozen copy of the current weights.
"""
from __future__ import annotations

import dataclasses
import statistics
from typing import TYPE_CHECKING

from ..data import tasks
from ..data.prep_bar import one_bar
from ..models.decoding import eval_decoder, release_eval_decoder
from ..runs.finite import trainable_weights_finite
from ..runs.records import Event, Kind, MetricsRecord
from ..training.coordinator import Coordinator
from ..training.cpu_lm_head import use_cpu_lm_head
from .builders import DEFAULT_FOR_FORMAT, get_builder
from .evaluate import evaluate
from .rewards import build_rewards, column_lists, score
from .sampler import sample

if TYPE_CHECKING:
    from ..runs.run import Run

REF_ADAPTER = "ref"  # the adapter name TRL gives its copy of the policy's adapter


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def steps_per_round(total: int, rounds: int) -> list[int]:
    """max_steps split as evenly as possible, earlier rounds taking the remainder."""
    return [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]


class OnPolicyCoordinator(Coordinator):
    """Drives the rounds over one Run. `ctx` is the engine's TrainContext; the objective is
    any registered preference method (its spec and validated config)."""

    def __init__(self, ctx, objective_spec, objective_config):
        self.ctx, self.knobs = ctx, ctx.method_config
        self.objective_spec, self.objective_config = objective_spec, objective_config
        self.tokenizer = ctx.tokenizer
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = ctx.model
        if ctx.peft_config is not None:  # one adapter carried through every round
            from peft import get_peft_model

            model = get_peft_model(model, ctx.peft_config)
        self.model = model
        m = self.knobs
        self.builder = get_builder(m.builder if m.builder != "auto" else DEFAULT_FOR_FORMAT[objective_spec.data_format])
        self.rewards = build_rewards(m.rewards)
        self.steps = steps_per_round(ctx.config.max_steps, m.rounds)
        self.run: Run | None = None
        self.global_step = 0
        self.tokens = 0
        self.first_round = 1

    # ---- the Coordinator interface --------------------------------------------------------
    def setup(self, run: "Run") -> None:
        self.run = run
        if run.checkpoint is not None:
            self._restore(run)

    def train(self) -> int:
        run = self.run
        run.emit_start(self.global_step, self.ctx.config.max_steps)
        if self.first_round == 1:
            self._evaluate(0)
        for r in range(self.first_round, self.knobs.rounds + 1):
            if run.stopped_at is None and run.stop_requested():
                run.stopped_at = self.global_step
            if run.stopped_at is not None:  # requested now, or while the last round trained
                break
            rows, info = self._sample_and_build(r)
            steps = self._train_round(r, rows, self.steps[r - 1]) if rows else 0
            self._emit(Kind.EVENT, {**info, "train_steps": steps,
                                    **({} if rows else {"note": "every prompt's samples tied: nothing to train on"})})
            if run.nan_step is not None:  # no evaluation or checkpoint of the weights a NaN step left
                break
            self._evaluate(r)
            if trainable_weights_finite(self.model):  # else the NaN shows in the next round's loss
                run.save_checkpoint(self.global_step, self.save_model,
                                    meta={"round": r, "global_step": self.global_step, "num_tokens": self.tokens})
        run.emit_end(self.global_step)
        return self.global_step

    def save_model(self, output_dir: str) -> None:
        self.model.save_pretrained(output_dir)
        self.tokenizer.save_pretrained(output_dir)

    # ---- one round --------------------------------------------------------------------------
    def _emit(self, kind: Kind, values: dict) -> None:
        self.run.emit(MetricsRecord(self.global_step, kind, values))

    def _prompts_for(self, r: int) -> list[dict]:
        ds, n = self.ctx.train_dataset, self.knobs.prompts_per_round
        return [ds[(r * n + i) % len(ds)] for i in range(min(n, len(ds)))]

    def _decoder(self):
        """(model, context) to generate with at this step: one decoding copy of the policy (adapter
        merged; bf16 linears under autocast on a bf16 CPU run), shared by the held-out evaluation
        and the next round's sampling, which run at the same step (workbench.models.decoding)."""
        return eval_decoder(self.model, step=self.global_step, bf16=bool(self.ctx.bf16))

    def _evaluate(self, r: int) -> None:
        eval_ds = self.ctx.eval_dataset
        if eval_ds is None or len(eval_ds) == 0:
            return
        m = self.knobs
        rows = list(eval_ds)
        decoder, context = self._decoder()
        with context():
            res = evaluate(decoder, self.tokenizer, rows, self.rewards, max_new_tokens=m.eval_max_new_tokens,
                           batch_size=m.sample_batch_size, progress=m.progress)
        self._emit(Kind.EVAL, {"round": r, "accuracy": res.accuracy, "eval_reward_mean": res.reward_mean,
                               "eval_length_mean": res.length_mean, "eval_rows": res.rows})
        for i in range(min(self.ctx.config.sample_prompts, len(rows))):
            self._emit(Kind.SAMPLE, {"round": r, "prompt_id": i, "prompt": rows[i]["prompt"][-1]["content"],
                                     "completion": res.completions[i], "reward": res.rewards[i]})

    def _sample_and_build(self, r: int) -> tuple[list[dict], dict]:
        m = self.knobs
        decoder, context = self._decoder()
        try:
            with context():
                groups, stats = sample(decoder, self.tokenizer, self._prompts_for(r), k=m.k,
                                       temperature=m.temperature, top_p=m.top_p, max_new_tokens=m.max_new_tokens,
                                       batch_size=m.sample_batch_size, seed=self.ctx.config.seed + r,
                                       progress=m.progress, desc=f"round {r} sampling")
        finally:
            release_eval_decoder()  # the round trains next: its weights move
        flat_rows = [g.row for g in groups for _ in g.completions]
        prompts = [g.prompt for g in groups for _ in g.completions]
        texts = [t for g in groups for t in g.completions]
        total, parts = score(self.rewards, prompts, texts, column_lists(flat_rows))
        for i, g in enumerate(groups):
            g.rewards = total[i * m.k:(i + 1) * m.k]
        kw = {}
        if self.builder.name == "all_pairs":
            kw["max_pairs_per_prompt"] = m.max_pairs_per_prompt
        if self.builder.name == "unpaired":
            kw["threshold"] = m.label_threshold
        built = self.builder.build(groups, **kw)
        mean, std = _mean_std(total)
        info = {"event": Event.ROUND, "round": r, "reward_mean": mean, "reward_std": std,
                "length_mean": statistics.fmean(x for g in groups for x in g.lengths),
                "prompts": len(groups), "prompts_kept": sum(len(set(g.rewards)) > 1 for g in groups),
                "samples": len(texts), "pairs": len(built),
                "sample_tokens_per_s": round(stats.tokens_per_s, 1), "sample_seconds": round(stats.seconds, 2)}
        if all(row.get("answer") is not None for row in flat_rows):
            info["sample_accuracy"] = statistics.fmean(
                tasks.check(row.get("task") or "custom", t, row["answer"]) for row, t in zip(flat_rows, texts))
        if len(parts) > 1:
            info.update({f"reward/{name}": statistics.fmean(values) for name, values in parts.items()})
        return built, info

    def _train_round(self, r: int, rows: list[dict], steps: int) -> int:
        """One TRL trainer of the objective on this round's rows, attached to the run on the
        run's step axis. Its reference is the policy as the round starts (module docstring)."""
        import datasets

        ctx = self.ctx
        cfg = dataclasses.replace(ctx.config, method=self.objective_spec.name, max_steps=steps,
                                  save_steps=10 ** 9, eval_rows=0)
        round_ctx = dataclasses.replace(ctx, config=cfg, method_config=self.objective_config, model=self.model,
                                        train_dataset=datasets.Dataset.from_list(rows), eval_dataset=None,
                                        peft_config=None, output_dir=str(self.run.checkpoints_dir / f".round-{r}"),
                                        callbacks=[], checkpoints=False)
        with one_bar(1, show=False):  # a round's pairs: no bars of their own
            trainer = self.objective_spec.build_trainer(round_ctx)
        use_cpu_lm_head(trainer)
        cb = self.run.attach(trainer, step_offset=self.global_step, token_offset=self.tokens,
                             max_steps=ctx.config.max_steps, extra={"round": r}, lifecycle=False, checkpoints=False)
        try:
            trainer.train()
        finally:
            self._drop_reference_adapter()
        self.global_step += trainer.state.global_step
        self.tokens += cb.tokens
        return trainer.state.global_step

    def _drop_reference_adapter(self) -> None:
        """TRL added a frozen copy of the adapter as the round's reference; the next round
        makes a fresh one from the policy it starts from."""
        if REF_ADAPTER in getattr(self.model, "peft_config", {}):
            self.model.delete_adapter(REF_ADAPTER)

    # ---- resume -------------------------------------------------------------------------------
    def _restore(self, run: "Run") -> None:
        import safetensors.torch

        meta = run.checkpoint_meta()
        if "round" not in meta:
            from ..errors import WorkbenchError
            raise WorkbenchError(f"{run.checkpoint} is not an on-policy round checkpoint (no round recorded)")
        d = run.checkpoint
        if hasattr(self.model, "peft_config"):
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.model, safetensors.torch.load_file(str(d / "adapter_model.safetensors")))
        else:
            self.model.load_state_dict(safetensors.torch.load_file(str(d / "model.safetensors")), strict=False)
        self.global_step = meta["global_step"]
        self.tokens = meta.get("num_tokens", 0)
        self.first_round = meta["round"] + 1
