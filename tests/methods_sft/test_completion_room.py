"""SFT with the loss on completions: TRL truncates each row to `max_length` (keep-start) and
drops the rows left with no completion token. The workbench counts them before the run
directory exists (the same rows TRL drops), warns with the count, and refuses a run that
would keep none (TRL's sampler raised a ValueError traceback on the empty dataset)."""
import pytest

from workbench import TrainConfig
from workbench.engine import plan
from workbench.errors import WorkbenchError
from workbench.methods._preference import TruncationWarning

ROWS = 96


@pytest.mark.parametrize("method", ["sft", "dft"])
def test_the_warning_counts_the_rows_trl_drops(build_job, method):
    with pytest.warns(TruncationWarning, match=r"\d+ of \d+ training rows have a prompt of max_length=40") as w:
        job = build_job(model="tiny-llama", dataset="instructions", method=method, peft="lora", max_steps=1,
                        max_rows=ROWS, max_length=40, eval_rows=0, sample_prompts=0)
    warned = int(str(w[0].message).split(" of ")[0])
    total = int(str(w[0].message).split(" of ")[1].split()[0])
    assert 0 < warned < total
    assert len(job.train_dataset) == total - warned  # exactly the rows TRL kept


def test_no_warning_when_every_prompt_fits(recwarn):
    plan(TrainConfig(model="tiny-llama", dataset="instructions", method="sft", peft="lora", max_steps=1,
                     max_rows=ROWS, max_length=256))
    assert not [w for w in recwarn if issubclass(w.category, TruncationWarning)]


def test_all_rows_dropped_is_one_error_before_the_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(WorkbenchError, match=r"all \d+ of \d+ training rows .* max_length=2 .* longest prompt"):
        plan(TrainConfig(model="tiny-llama", dataset="instructions", method="sft", peft="lora", max_steps=1,
                         max_rows=ROWS, max_length=2, run_dir=str(run_dir)))
    assert not run_dir.exists()


def test_whole_sequence_loss_keeps_every_row(recwarn):
    # completion_only_loss=False trains on the prompt tokens too: nothing is dropped, nothing to say
    plan(TrainConfig(model="tiny-llama", dataset="instructions", method="sft", peft="lora", max_steps=1,
                     max_rows=ROWS, max_length=2, method_args={"completion_only_loss": False}))
    assert not [w for w in recwarn if issubclass(w.category, TruncationWarning)]
