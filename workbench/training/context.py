"""Everything a method needs to build its trainer, plus the TRL arguments every method
shares (so each method only adds its own knobs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import TrainConfig


@dataclass
class TrainContext:
    config: TrainConfig
    method_config: Any
    model: Any
    tokenizer: Any
    train_dataset: Any
    eval_dataset: Any
    peft_config: Any              # peft.PeftConfig or None (full fine-tuning)
    output_dir: str               # where TRL writes checkpoints
    callbacks: list = field(default_factory=list)
    bf16: bool = False
    device: str = "cpu"
    checkpoints: bool = True      # False: the trainer saves nothing (a coordinator checkpoints itself)

    def trl_args(self) -> dict[str, Any]:
        """Keyword arguments shared by every TRL config class (SFTConfig, DPOConfig, …).
        TRL's defaults target GPUs (bf16 on, gradient checkpointing on, lr 1e-6 for DPO);
        we set each deliberately."""
        c = self.config
        has_eval = self.eval_dataset is not None and len(self.eval_dataset) > 0
        return dict(
            output_dir=self.output_dir,
            max_steps=c.max_steps,
            per_device_train_batch_size=c.batch_size,
            per_device_eval_batch_size=c.batch_size,
            gradient_accumulation_steps=c.grad_accum,
            learning_rate=c.learning_rate,
            lr_scheduler_type=c.lr_scheduler,
            warmup_steps=c.warmup_ratio,  # transformers 5: a float < 1 is a ratio of max_steps
            logging_steps=c.logging_steps,
            logging_first_step=True,
            logging_nan_inf_filter=False,  # a NaN loss must reach our records and stop the run
            eval_strategy="steps" if has_eval else "no",
            eval_steps=c.eval_steps,
            save_strategy="steps" if self.checkpoints else "no",
            save_steps=c.save_steps,
            save_total_limit=2,
            report_to="none",
            seed=c.seed,
            data_seed=c.seed,
            bf16=self.bf16,
            fp16=False,
            use_cpu=self.device == "cpu",
            # transformers 5 name; the old `gradient_checkpointing` (TRL default True for DPO)
            # is ignored once this one is set.
            activation_checkpointing=c.gradient_checkpointing,
            dataloader_pin_memory=self.device == "cuda",
            disable_tqdm=True,  # our own records drive progress (CLI line, widgets)
            max_length=c.max_length,
        )

    def build(self, trainer_cls, args, **kwargs):
        """Construct a TRL trainer on this context's model, data, tokenizer, PEFT config and
        callbacks. TRL's own checks on knob combinations become one-line errors."""
        from ..errors import WorkbenchError

        kwargs.setdefault("train_dataset", self.train_dataset)
        try:
            return trainer_cls(model=self.model, args=args, eval_dataset=self.eval_dataset,
                               processing_class=self.tokenizer, peft_config=self.peft_config,
                               callbacks=self.callbacks, **kwargs)
        except (ValueError, NotImplementedError) as e:
            raise WorkbenchError(f"method {self.config.method!r}: {str(e).splitlines()[0]}") from e
