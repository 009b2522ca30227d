"""`group_by_length` (every SFT variant, and the DPO family): batches of rows of similar length,
so less of each step is padding. DPO gives transformers' LengthGroupedSampler a pair's length
(prompt + the longer response), which it cannot infer from DPO's columns. Each epoch must still
use every row exactly once, and the batches the trainer's own collator builds from the sampler's
order must carry less padding than a uniform shuffle's."""
import pytest

CASES = [("sft", "instructions"), ("dft", "instructions"), ("dpo", "preferences"), ("ln-dpo", "preferences")]


def _padding_share(job) -> tuple[float, list[int]]:
    order = list(job._get_train_sampler(job.train_dataset))
    real = padded = 0
    for i in range(0, len(order), 4):
        mask = job.data_collator([job.train_dataset[j] for j in order[i:i + 4]])["attention_mask"]
        real += int(mask.sum())
        padded += mask.numel()
    return 1 - real / padded, order


@pytest.mark.parametrize("method,dataset", CASES)
def test_grouped_batches_pad_less_and_use_every_row_once(build_job, method, dataset):
    def share(grouped):
        return _padding_share(build_job(model="tiny-llama", dataset=dataset, method=method, peft="lora",
                                        max_steps=1, max_rows=96, batch_size=4, eval_rows=0, sample_prompts=0,
                                        method_args={"group_by_length": grouped}))
    shuffled, order = share(False)
    grouped, grouped_order = share(True)
    assert sorted(grouped_order) == sorted(order) == list(range(len(order)))
    assert grouped < 0.5 * shuffled, (grouped, shuffled)
