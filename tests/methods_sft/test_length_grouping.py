"""`group_by_length` (every SFT variant): batches of rows of similar length, so less of each
step is padding. Each epoch must still use every row exactly once, and the batches the
trainer draws must carry less padding than a uniform shuffle's."""
import pytest

from workbench import TrainConfig
from workbench.engine import _build, plan
from workbench.runs.run import Run


def _trainer(tmp_path, method, grouped):
    p = plan(TrainConfig(model="tiny-llama", dataset="instructions", method=method, peft="lora", max_steps=1,
                         max_rows=96, batch_size=4, eval_rows=0, sample_prompts=0,
                         method_args={"group_by_length": grouped}))
    run = Run.create(tmp_path / f"{method}-{grouped}", p.resolved())
    job, _ = _build(p, run)
    run.close()
    return job


def _padding_share(job) -> tuple[float, list[int]]:
    lengths = [len(ids) for ids in job.train_dataset["input_ids"]]
    order = list(job._get_train_sampler(job.train_dataset))
    batches = [order[i:i + 4] for i in range(0, len(order), 4)]
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - sum(lengths) / padded, order


@pytest.mark.parametrize("method", ["sft", "dft"])
def test_grouped_batches_pad_less_and_use_every_row_once(tmp_path, method):
    shuffled, order = _padding_share(_trainer(tmp_path, method, False))
    grouped, grouped_order = _padding_share(_trainer(tmp_path, method, True))
    assert sorted(grouped_order) == sorted(order) == list(range(len(order)))
    assert grouped < 0.5 * shuffled, (grouped, shuffled)
